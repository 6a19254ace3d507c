"""Graders that need no MPI: gradient buckets, the LPT scheduler, Kneser-Ney discounts
(and, in ``bptt_checks.py``, the LSTM backward). Each runs the student's function in this
process on a handful of cases, each under an alarm (an endless loop fails the check
instead of hanging the grader), and compares it with minipar's own.
"""

from __future__ import annotations


import numpy as np

from minipar.core.errors import UserError
from minipar.training.buckets import make_buckets
from minipar.planning.policies import block, lpt, round_robin
from minipar.planning.policies import plan_tasks
from minipar.models.kneser_ney import FALLBACK, estimate_discounts
from minipar.grading import bptt_checks
from minipar.core.plugins import load_callable
from minipar.grading import harness
from minipar.grading.harness import call, close




# ---- Task 6.1: gradient buckets --------------------------------------------------------

class _Param:
    """Enough of a Parameter for bucketing: ``.data.nbytes`` and ``.size``."""

    def __init__(self, nbytes):
        self.data = np.zeros(nbytes // 4, np.float32)
        self.size = self.data.size


def grade_buckets(fn, report, timeout):
    cases = [
        ("covers every parameter once, last first", [400, 400, 800, 40, 1200, 4], 1000),
        ("a bucket closes once it holds bucket_bytes", [256] * 9, 1024),
        ("a parameter larger than a bucket", [64, 8192, 64, 64], 256),
        ("one bucket for everything", [40, 80, 120], 1 << 30),
        ("one parameter per bucket", [40, 80, 120], 1),
        ("no parameters", [], 1024),
    ]
    for title, sizes, limit in cases:
        params = [_Param(s) for s in sizes]
        want = make_buckets(params, limit)
        got, err = call(fn, (params, limit), timeout)
        setting = f"sizes {sizes} bytes, bucket_bytes={limit}"
        if err:
            report.add(title, False, f"{setting}: {err}")
            continue
        try:
            got = [[int(i) for i in b] for b in got]
        except (TypeError, ValueError):
            report.add(title, False, f"{setting}: expected a list of lists of indices, got "
                       f"{got!r:.80}")
            continue
        flat = [i for b in got for i in b]
        why = ""
        if sorted(flat) != list(range(len(sizes))):
            why = "every parameter index must appear in exactly one bucket"
        elif flat != list(reversed(range(len(sizes)))):
            why = ("take the parameters last first: backward finishes the last layers first, "
                   "so their bucket can be sent while the rest is still being computed")
        elif got != want:
            why = ("close a bucket as soon as it holds at least bucket_bytes (the parameter "
                   "that crosses the limit goes in, then a new bucket starts)")
        msg = f"{setting}: got {got}, expected {want}; {why}" if got != want else setting
        report.add(title, got == want, msg)


# ---- Task 8.1: LPT ---------------------------------------------------------------------

def _loads(lists, costs):
    return sorted(sum(costs[t] for t in ts) for ts in lists)


def _show(loads):
    return "[" + ", ".join(f"{x:.6g}" for x in loads) + "]"


def _unsorted_greedy(costs, p):
    loads, owned = [0.0] * p, [[] for _ in range(p)]
    for t, c in enumerate(costs):
        r = min(range(p), key=lambda k: (loads[k], k))
        owned[r].append(t)
        loads[r] += c
    return owned


def _fewest_tasks(costs, p):
    """Largest task first, but to the rank with the FEWEST TASKS (a common slip)."""
    owned = [[] for _ in range(p)]
    for t in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(p), key=lambda k: (len(owned[k]), k))
        owned[r].append(t)
    return owned


def grade_lpt(fn, report, timeout):
    rng = np.random.default_rng(7)
    distinct = [round(float(c), 3) for c in 1.0 + rng.pareto(1.5, size=23)]
    cases = [
        ("largest task first, to the least-loaded rank", [5, 3, 8, 2, 7, 4, 1, 6], 3),
        ("heavy-tailed costs", distinct, 4),
        ("more ranks than tasks", [3.0, 1.0, 2.0], 5),
        ("equal costs (ties)", [1.0] * 10, 3),
        ("one rank", [2.0, 5.0, 1.0], 1),
        ("no tasks", [], 3),
    ]
    for title, costs, p in cases:
        want = [lpt(costs, p).tasks(r) for r in range(p)]
        got, err = call(fn, (list(costs), p), timeout)
        setting = f"costs {costs if len(costs) < 12 else str(costs[:6])[:-1] + ', ...]'}, p={p}"
        if err:
            report.add(title, False, f"{setting}: {err}")
            continue
        try:
            got = plan_tasks(got, p, len(costs))
        except ValueError as exc:
            report.add(title, False, f"{setting}: {exc}")
            continue
        again, _ = call(fn, (list(costs), p), timeout)
        span, best = max(_loads(got, costs), default=0), max(_loads(want, costs), default=0)
        ok = np.allclose(_loads(got, costs), _loads(want, costs))
        why = ""
        if not ok:
            for name, other, fix in (
                    ("giving each task to the rank with the fewest tasks",
                     _fewest_tasks(costs, p), "choose the rank with the least LOAD (the sum "
                     "of its costs so far), not the fewest tasks"),
                    ("the tasks in the order given, without sorting",
                     _unsorted_greedy(costs, p), "sort the tasks by decreasing cost"),
                    ("round robin", [round_robin(costs, p).tasks(r) for r in range(p)],
                     "sort the tasks by decreasing cost, then use the least-loaded rank"),
                    ("blocks", [block(costs, p).tasks(r) for r in range(p)],
                     "sort the tasks by decreasing cost, then use the least-loaded rank")):
                if np.allclose(_loads(got, costs), _loads(other, costs)):
                    why = f" -- the same loads as {name}: {fix}"
                    break
            report.add(title, False, f"{setting}: makespan {span:.6g} with loads "
                       f"{_show(_loads(got, costs))}, LPT gives {best:.6g} with "
                       f"{_show(_loads(want, costs))}"
                       + (why or ": give each task, largest first, to the rank with the "
                                 "least load so far"))
        elif again is None or plan_tasks(again, p, len(costs)) != got:
            report.add(title, False, f"{setting}: a second call gave another plan; every "
                       "rank must compute the same plan, so break ties by task and rank index")
        elif [sorted(ts) for ts in got] != [sorted(ts) for ts in want]:
            report.add(title, False, f"{setting}: the loads are right but the tasks went to "
                       f"other ranks ({got} instead of {want}): break ties as the handout "
                       f"says, the lower task index first and then the lower rank")
        else:
            report.add(title, True, f"{setting}: makespan {span:.6g}")


# ---- Task 2.1: modified Kneser-Ney discounts --------------------------------------------

def _with_counts(t, extra=()):
    """Adjusted counts with t[j] grams of count j (j = 1..len(t)), plus ``extra`` values."""
    a = [j for j, n in enumerate(t, start=1) for _ in range(n)] + list(extra)
    return np.random.default_rng(len(a)).permutation(np.array(a, dtype=np.int64))


def grade_kneser_ney(fn, report, timeout):
    zipf = np.minimum(np.random.default_rng(3).zipf(1.6, size=5000), 10**6).astype(np.int64)
    cases = [
        ("discounts from counts of counts", _with_counts([100, 40, 20, 12])),
        ("a long-tailed count distribution", zipf),
        ("zeros and large counts", _with_counts([60, 25, 9, 7], extra=[0] * 7 + [9, 300])),
        ("fallback: no grams seen three times", _with_counts([30, 10, 0, 4])),
        ("fallback: a discount outside [0, j]", _with_counts([1, 1, 5])),
    ]
    for title, a in cases:
        order = 3
        (want, warn_want) = estimate_discounts(a, order)
        got, err = call(fn, (a.copy(), order), timeout)
        if err:
            report.add(title, False, err)
            continue
        try:
            d, warn = got
            d = tuple(float(x) for x in d)
        except (TypeError, ValueError):
            report.add(title, False, f"expected ((D1, D2, D3), warning or None), got {got!r:.80}")
            continue
        t = np.bincount(np.minimum(a[a > 0], 5), minlength=6)[1:5].tolist()
        setting = f"t1..t4 = {t}"
        problem = close(d, want, "(D1, D2, D3)", rtol=1e-12) if len(d) == 3 else \
            f"expected three discounts, got {len(d)}"
        if problem is None and (warn is None) != (warn_want is None):
            problem = ("return a warning (a string) exactly when the fallback discounts "
                       f"{FALLBACK} are used, else None")
        if problem and tuple(want) == FALLBACK:
            problem += (f"; when some t_j (j = 1..3) is 0 or some D_j falls outside [0, j], "
                        f"use the fallback {FALLBACK}")
        report.add(title, problem is None, f"{setting}: {problem}" if problem else
                   f"{setting}: D = ({', '.join(f'{x:.4f}' for x in d)})")


def grade_local(task, target, timeout, report) -> None:
    try:
        fn = load_callable(target)
    except UserError as exc:
        report.add("loads", False, str(exc))
        return
    harness.forget_missing()
    graders = {"buckets": grade_buckets, "lpt": grade_lpt, "kneser_ney": grade_kneser_ney,
               "lstm_backward": bptt_checks.grade_lstm_backward}
    graders[task](fn, report, timeout)
