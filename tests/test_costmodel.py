"""Alpha-beta-gamma model: formulas, best algorithm and crossovers, scaling, calibration files."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.errors import ConfigError
from minipar.parallel import costmodel as cm
from minipar.parallel.costmodel import (
    ALGORITHMS, DEFAULT, CostParams, allreduce_line, allreduce_time, best_algorithm,
    crossovers, dp_scaling, dp_step, fit_line,
)

LAT = CostParams(alpha=1.0, beta=0.0, gamma=0.0)    # counts messages on the critical path
BW = CostParams(alpha=0.0, beta=1.0, gamma=0.0)     # counts bytes sent per rank
RED = CostParams(alpha=0.0, beta=0.0, gamma=1.0)    # counts bytes reduced


@pytest.mark.parametrize("p", [2, 3, 4, 5, 8, 12, 1024])
def test_formulas_term_by_term(p):
    L = math.ceil(math.log2(p))
    k = int(math.floor(math.log2(p)))
    extra = p != 2**k
    n = 1000.0
    expect = {  # (messages, bytes sent, bytes reduced) along the critical path
        "naive": (2 * (p - 1), 2 * (p - 1) * n, (p - 1) * n),
        "tree": (2 * L, 2 * L * n, L * n),
        "rd": (k + 2 * extra, (k + 2 * extra) * n, (k + extra) * n),
        "ring": (2 * (p - 1), 2 * (p - 1) / p * n, (p - 1) / p * n),
    }
    for alg, (msgs, sent, reduced) in expect.items():
        assert allreduce_time(alg, p, n, LAT) == pytest.approx(msgs)
        assert allreduce_time(alg, p, n, BW) == pytest.approx(sent)
        assert allreduce_time(alg, p, n, RED) == pytest.approx(reduced)


def test_one_rank_costs_nothing_and_bad_names_fail():
    for alg in ALGORITHMS:
        assert allreduce_time(alg, 1, 1e6) == 0.0
    with pytest.raises(ConfigError):
        allreduce_time("butterfly", 4, 8)
    with pytest.raises(ConfigError):
        allreduce_line("ring", 0)


def test_mpi_is_best_of_others_unless_fitted():
    n = 1 << 20
    assert allreduce_time("mpi", 4, n) == min(allreduce_time(a, 4, n) for a in ALGORITHMS)
    fitted = CostParams(1e-5, 1e-10, 1e-10, mpi={4: (2e-5, 3e-10)})
    assert allreduce_time("mpi", 4, n, fitted) == pytest.approx(2e-5 + 3e-10 * n)
    assert allreduce_time("mpi", 2, n, fitted) == min(
        allreduce_time(a, 2, n, fitted) for a in ALGORITHMS)
    assert any(a == "mpi" for _, a in crossovers(4, CostParams(1, 1, 1, mpi={4: (0.0, 0.0)}),
                                                 algorithms=(*ALGORITHMS, "mpi")))


def test_small_messages_favour_latency_large_favour_ring():
    assert best_algorithm(16, 8) in ("rd", "tree")
    assert best_algorithm(16, 64 << 20) == "ring"
    segs = crossovers(16)
    assert segs[0] == (0.0, best_algorithm(16, 0))
    assert segs[-1][1] == "ring"


params_st = st.builds(CostParams,
                      alpha=st.floats(1e-7, 1e-3), beta=st.floats(1e-11, 1e-8),
                      gamma=st.floats(0, 1e-8))


@settings(max_examples=60, deadline=None)
@given(params=params_st, p=st.integers(2, 64))
def test_crossovers_are_the_lower_envelope(params, p):
    segs = crossovers(p, params)
    assert [s[0] for s in segs] == sorted(s[0] for s in segs)
    edges = [s[0] for s in segs[1:]] + [segs[-1][0] * 4 + 1e7]
    for (start, alg), stop in zip(segs, edges):
        mid = (start + stop) / 2
        best = min(allreduce_time(a, p, mid, params) for a in ALGORITHMS)
        assert allreduce_time(alg, p, mid, params) <= best * (1 + 1e-9) + 1e-18
    for (x, alg), (_, prev) in zip(segs[1:], segs):  # neighbours meet at the crossover
        assert allreduce_time(alg, p, x, params) == pytest.approx(
            allreduce_time(prev, p, x, params), rel=1e-6)


def test_data_parallel_scaling_table():
    rows = dp_scaling([1, 2, 4, 64, 1024], compute_time=0.05, grad_bytes=4e6)
    assert rows[0]["efficiency"] == 1.0 and rows[0]["comm"] == 0.0
    effs = [r["efficiency"] for r in rows]
    assert all(0 < e <= 1 for e in effs) and effs == sorted(effs, reverse=True)
    strong = dp_step(8, 0.05, 4e6, scaling="strong")
    assert strong["compute"] == pytest.approx(0.05 / 8)
    assert strong["efficiency"] == pytest.approx(0.05 / (8 * strong["step"]))
    assert dp_step(8, 0.05, 4e6, algorithm="naive")["algorithm"] == "naive"
    with pytest.raises(ConfigError):
        dp_step(2, 1.0, 1.0, scaling="medium")


def test_fit_line_recovers_alpha_beta():
    sizes = [8, 1024, 65536, 1 << 20, 4 << 20]
    a, b = fit_line(sizes, [3e-6 + 2e-10 * n for n in sizes])
    assert a == pytest.approx(3e-6, rel=1e-6) and b == pytest.approx(2e-10, rel=1e-6)


def test_save_and_load(tmp_path, monkeypatch):
    params = CostParams(2e-6, 3e-10, 1e-10, mpi={2: (1e-6, 2e-10)}, source="test")
    path = cm.save(params, tmp_path / "sub" / "cal.json")
    assert json.loads(path.read_text())["alpha"] == 2e-6
    back = cm.load(path)
    assert back == CostParams(2e-6, 3e-10, 1e-10, mpi={2: (1e-6, 2e-10)}, source="test")
    monkeypatch.setenv("MINIPAR_CALIBRATION", str(tmp_path / "none.json"))
    assert cm.default_path() == tmp_path / "none.json"
    assert cm.load() is DEFAULT
    with pytest.raises(ConfigError, match="calibrate"):
        cm.load(fallback=False)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        cm.load(tmp_path / "bad.json")
