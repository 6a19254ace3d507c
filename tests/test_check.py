"""The in-process graders (buckets, LPT, Kneser-Ney discounts, LSTM backward), the report,
the plug-in loader and the command line of ``python -m minipar.check``."""

import json
import textwrap

import numpy as np
import pytest

from minipar import check
from minipar.grading import bptt_checks
from minipar.nn.lstm_numpy import forward as lstm_forward
from minipar.grading.exercises import EXERCISES, grade_exercise
from minipar.grading.report import Report
from minipar.core.errors import ConfigError
from minipar.planning.policies import get_scheduler, plan_tasks
from minipar.core.plugins import load_callable

PLANTED = textwrap.dedent('''
    import heapq
    import random

    import numpy as np


    def buckets_forward(params, bucket_bytes):
        out, cur, size = [], [], 0
        for i, p in enumerate(params):
            cur.append(i)
            size += p.data.nbytes
            if size >= bucket_bytes:
                out.append(cur)
                cur, size = [], 0
        return out + ([cur] if cur else [])


    def buckets_early(params, bucket_bytes):
        """Closes a bucket before the parameter that would cross the limit."""
        out, cur, size = [], [], 0
        for i in reversed(range(len(params))):
            n = params[i].data.nbytes
            if cur and size + n > bucket_bytes:
                out.append(cur)
                cur, size = [], 0
            cur.append(i)
            size += n
        return out + ([cur] if cur else [])


    def lpt_unsorted(costs, p):
        heap, owned = [(0.0, r) for r in range(p)], [[] for _ in range(p)]
        for t, c in enumerate(costs):
            load, r = heapq.heappop(heap)
            owned[r].append(t)
            heapq.heappush(heap, (load + c, r))
        return owned


    def lpt_random_ties(costs, p):
        """LPT that breaks ties between equally loaded ranks at random."""
        loads, owned = [0.0] * p, [[] for _ in range(p)]
        for t in sorted(range(len(costs)), key=lambda i: -costs[i]):
            low = min(loads)
            r = random.choice([k for k in range(p) if loads[k] == low])
            owned[r].append(t)
            loads[r] += costs[t]
        return owned


    def lpt_fewest_tasks(costs, p):
        """Sorted, but each task goes to the rank with the fewest tasks, not the least load."""
        owned = [[] for _ in range(p)]
        for t in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            owned[min(range(p), key=lambda k: (len(owned[k]), k))].append(t)
        return owned


    def lpt_high_ties(costs, p):
        """LPT whose ties go to the higher task index first, against the handout."""
        heap, owned = [(0.0, r) for r in range(p)], [[] for _ in range(p)]
        for t in sorted(range(len(costs)), key=lambda i: (-costs[i], -i)):
            load, r = heapq.heappop(heap)
            owned[r].append(t)
            heapq.heappush(heap, (load + costs[t], r))
        return owned


    def lpt_round_robin(costs, p):
        return [list(range(r, len(costs), p)) for r in range(p)]


    def lpt_blocks(costs, p):
        n = len(costs)
        cuts = [n * r // p for r in range(p + 1)]
        return [list(range(cuts[r], cuts[r + 1])) for r in range(p)]


    def lpt_endless(costs, p):
        while True:
            pass


    def kn_no_fallback(a, order):
        t = np.bincount(np.minimum(a[a > 0], 5), minlength=6).astype(float)
        y = t[1] / (t[1] + 2 * t[2])
        with np.errstate(all="ignore"):
            return tuple(j - (j + 1) * y * t[j + 1] / t[j] for j in (1, 2, 3)), None


    def _lstm(cache, dout, dh_n, dc_n, recurrent=True, c_prev_shift=0):
        x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
        dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
        db = np.zeros_like(cache["b"])
        dh, dc = dh_n.copy(), dc_n.copy()
        for t in range(x.shape[1] - 1, -1, -1):
            i, f, g, o, tc = (cache[k][t] for k in ("i", "f", "g", "o", "tc"))
            dh = dout[:, t] + dh
            dc = dc + dh * o * (1 - tc ** 2)
            c_prev = cache["c"][t + c_prev_shift]
            dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                                 dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
            dx[:, t] = dz @ w_ih.T
            dw_ih += x[:, t].T @ dz
            dw_hh += cache["h"][t].T @ dz
            db += dz.sum(0)
            dh, dc = (dz @ w_hh.T, dc * f) if recurrent else (0 * dh, 0 * dc)
        return dx, dh, dc, dw_ih, dw_hh, db


    def lstm_good(cache, dout, dh_n, dc_n):
        return _lstm(cache, dout, dh_n, dc_n)


    def lstm_no_recurrence(cache, dout, dh_n, dc_n):
        return _lstm(cache, dout, dh_n, dc_n, recurrent=False)


    def lstm_forget_gate_uses_c_t(cache, dout, dh_n, dc_n):
        return _lstm(cache, dout, dh_n, dc_n, c_prev_shift=1)
''')


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted_local") / "planted_local.py"
    path.write_text(PLANTED)
    return str(path)


@pytest.mark.parametrize("task", ["buckets", "lpt", "kneser_ney", "lstm_backward"])
def test_minipar_reference_passes(task):
    report = grade_exercise(task, EXERCISES[task].reference)
    assert report.ok and report.total >= 4, report.format()


@pytest.mark.parametrize("task, fn, words", [
    ("buckets", "buckets_forward", "take the parameters last first"),
    ("buckets", "buckets_early", "as soon as it holds at least bucket_bytes"),
    ("lpt", "lpt_unsorted", "without sorting"),
    ("lpt", "lpt_random_ties", "another plan"),
    ("lpt", "lpt_endless", "did not return within 0.5 s"),
    ("lpt", "lpt_fewest_tasks", "choose the rank with the least LOAD"),
    ("lpt", "lpt_round_robin", "the same loads as round robin"),
    ("lpt", "lpt_blocks", "the same loads as blocks"),
    ("lpt", "lpt_high_ties", "the lower task index first"),
    ("kneser_ney", "kn_no_fallback", "use the fallback (0.5, 1.0, 1.5)"),
    ("lstm_backward", "lstm_no_recurrence", "what flows back to step t-1"),
    ("lstm_backward", "lstm_forget_gate_uses_c_t", "f gate block"),
])
def test_planted_mistakes_fail_with_a_message(planted, task, fn, words):
    report = grade_exercise(task, f"{planted}:{fn}", timeout=0.5 if fn == "lpt_endless" else 10.0)
    assert not report.ok
    assert any(words in c.message for c in report.checks if not c.ok), report.format()


def test_a_correct_student_lstm_backward_passes(planted):
    report = grade_exercise("lstm_backward", f"{planted}:lstm_good")
    assert report.ok, report.format()


def test_reference_backward_matches_finite_differences():
    cache, dout, dh_n, dc_n = bptt_checks.make_case(2, 3, 2, 2, seed=5)
    args = [cache[k].copy() for k in ("x", "h0", "c0", "w_ih", "w_hh", "b")]
    grads = bptt_checks.reference_backward(cache, dout, dh_n, dc_n)

    def loss(a):
        out, h_n, c_n, _ = lstm_forward(*a)
        return (out * dout).sum() + (h_n * dh_n).sum() + (c_n * dc_n).sum()
    eps = 1e-6
    for k, a in enumerate(args):
        for j in range(a.size):
            flat = a.reshape(-1)
            old = flat[j]
            flat[j] = old + eps
            up = loss(args)
            flat[j] = old - eps
            down = loss(args)
            flat[j] = old
            assert abs((up - down) / (2 * eps) - grads[k].reshape(-1)[j]) < 1e-6


def test_plain_forward_matches_the_fused_layer():
    from minipar.core import backend
    from minipar.nn.lstm_fused import LSTMLayer
    cache, *_ = bptt_checks.make_case(3, 4, 2, 5, seed=6)
    args = [cache[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b")]
    out, h_n, c_n, _ = lstm_forward(*args)
    with backend.dtype_scope("float64"):
        ref = LSTMLayer.apply(*args)
    for a, b in zip((out, h_n, c_n), ref):
        np.testing.assert_allclose(a, backend.to_numpy(b.data), rtol=1e-12, atol=1e-12)


def test_report_text_and_json():
    r = Report("lpt", "mine:lpt")
    r.add("first", True, "fine")
    r.add("second", False, "line one\nline two")
    r.hint("try again")
    text = r.format()
    assert "  PASS  first (fine)" in text and "  FAIL  second: line one\n" in text
    assert "hint: try again" in text and "score 50% (1/2 checks passed)" in text
    j = json.loads(json.dumps(r.to_json()))
    assert j["score"] == 0.5 and j["passed"] == 1 and j["total"] == 2 and not j["ok"]


def test_the_correctness_gate_and_the_weights():
    r = Report("ring_allreduce", "mine:allreduce")
    r.add("2 ranks: finishes", True, weight=3)
    r.add("2 ranks: results", True, weight=4)
    r.add("2 ranks: identical", True, weight=1, correctness=False)
    r.add("2 ranks: messages", False, weight=2, correctness=False)
    assert r.gate_open and r.score == 0.8  # right but not a ring: the messages' 2 of 10
    r.add("3 ranks: finishes", False, weight=3)
    r.add("3 ranks: results", False, weight=4)
    # wrong at p = 3: the style checks that passed earn nothing, only correctness counts
    assert not r.gate_open and r.score == 7 / 17
    assert "a correctness check failed, so the other checks earn nothing" in r.format()
    j = r.to_json()
    assert j["gate_open"] is False and j["checks"][2]["weight"] == 1 and "scheme" in j


def test_load_callable_explains_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good_mod.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "broken_mod.py").write_text("def f(:\n")
    assert load_callable("good_mod:f")(1) == 2
    assert load_callable(f"{tmp_path}/good_mod.py:f")(2) == 3
    for spec, words in [("nocolon", "module:function"),
                        ("no_such_mod:f", "no no_such_mod.py in this folder"),
                        ("good_mod:g", "has no function 'g'"), ("broken_mod:f", "SyntaxError"),
                        ("missing.py:f", "no file missing.py")]:
        with pytest.raises(ConfigError, match=words):
            load_callable(spec)


def test_scheduler_plugin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sched.py").write_text(
        "def plan(costs, p):\n    return [list(range(r, len(costs), p)) for r in range(p)]\n"
        "def lossy(costs, p):\n    return [[0]] + [[] for _ in range(p - 1)]\n")
    assert get_scheduler("lpt")([5, 3, 8, 2], 2) == [[2, 3], [0, 1]]
    assert get_scheduler("sched:plan")([1, 1, 1], 2) == [[0, 2], [1]]
    with pytest.raises(ConfigError, match=r"missing \[1, 2\]"):
        get_scheduler("sched:lossy")([1, 1, 1], 2)
    with pytest.raises(ValueError, match="one list per rank"):
        plan_tasks([[0, 1]], 2, 2)


def test_cli_usage(capsys):
    assert check.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXERCISES)
    assert check.main([]) == 2
    assert check.main(["lpt", "x:y", "--ranks", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert check.main(["lpt", "no_such_module_here:lpt"]) == 1
    assert "FAIL  loads" in capsys.readouterr().out
