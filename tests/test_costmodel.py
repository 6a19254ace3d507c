"""Alpha-beta-gamma model: formulas, best algorithm and crossovers, scaling, calibration files."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.core.errors import ConfigError
from minipar.planning import costmodel as cm
from minipar.planning.costmodel import (ALGORITHMS, DEFAULT, CostParams, allreduce_line,
                                        allreduce_time, best_algorithm, crossovers, dp_scaling,
                                        dp_step, fit_line)

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
    pts = CostParams(2e-6, 3e-10, 1e-10, mpi={4: ((64, 3e-6), (1024, 5e-6))}, source="test",
                     shm={4: ((64, 9e-6), (1024, 9.5e-6))})
    assert cm.load(cm.save(pts, tmp_path / "pts.json")) == pts
    monkeypatch.setenv("MINIPAR_CALIBRATION", str(tmp_path / "none.json"))
    assert cm.default_path() == tmp_path / "none.json"
    assert cm.load() is DEFAULT
    with pytest.raises(ConfigError, match="calibrate"):
        cm.load(fallback=False)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        cm.load(tmp_path / "bad.json")


# ---- host terms: cache, beta_mem, duplex, oversubscription ------------------------------

HOST = CostParams(alpha=1e-6, beta=1e-10, gamma=5e-11, beta_mem=3e-10, cache_bytes=1 << 20,
                  duplex=2.0, cores=2, ranks_per_host=4)


@pytest.mark.parametrize("p", [2, 3, 4, 5, 8, 1024])
@pytest.mark.parametrize("n", [0.0, 8.0, 65536.0, 3e6, 6.4e7])
def test_defaults_reproduce_the_lines(p, n):
    base = CostParams(alpha=1.3e-6, beta=1.2e-10, gamma=7e-11)
    same = CostParams(alpha=1.3e-6, beta=1.2e-10, gamma=7e-11, cache_bytes=1 << 20, cores=2)
    for alg in ALGORITHMS:
        a, b = allreduce_line(alg, p, base)
        assert allreduce_time(alg, p, n, base) == pytest.approx(a + b * n, rel=1e-12, abs=0)
        assert allreduce_time(alg, p, n, same) == pytest.approx(a + b * n, rel=1e-12, abs=0)
    for preset in (*cm.PRESETS.values(), DEFAULT):
        assert preset.slowdown(1024) == 1.0 and preset.p2p(n) == preset.alpha + preset.beta * n


def test_piecewise_message_cost():
    c = 1 << 20
    assert cm.message_time(1000, HOST) == pytest.approx(1e-6 + 1e-10 * 1000)
    assert cm.message_time(c, HOST) == pytest.approx(1e-6 + 1e-10 * c)
    assert cm.message_time(3 * c, HOST) == pytest.approx(1e-6 + 1e-10 * c + 3e-10 * 2 * c)
    eps = 1e-3  # continuous at C
    assert cm.message_time(c + eps, HOST) - cm.message_time(c - eps, HOST) < 1e-12
    assert cm.message_time(c, HOST, s=2) == pytest.approx(1e-6 + 2 * 1e-10 * c)


def test_duplex_only_affects_exchanges_beyond_the_cache():
    c = 1 << 20
    full = CostParams(**{**HOST.__dict__, "duplex": 1.0})
    for m in (8, 1000, c):
        assert cm.message_time(m, HOST, exchange=True) == cm.message_time(m, HOST)
    m = 5 * c
    extra = cm.message_time(m, HOST, exchange=True) - cm.message_time(m, HOST)
    assert extra == pytest.approx(3e-10 * (m - c))  # (duplex - 1) beta_mem (m - C)
    # tree and naive send one way only; rd and ring exchange
    for alg in ("tree", "naive"):
        assert allreduce_time(alg, 2, 64e6, HOST) == allreduce_time(alg, 2, 64e6, full)
    for alg in ("rd", "ring"):
        assert allreduce_time(alg, 2, 64e6, HOST) > allreduce_time(alg, 2, 64e6, full)
        assert allreduce_time(alg, 2, 1e5, HOST) == allreduce_time(alg, 2, 1e5, full)


def test_cache_share_follows_the_working_set_not_the_message():
    c, p = 1 << 20, 4
    flat = CostParams(alpha=1e-6, beta=1e-10, gamma=5e-11)
    piecewise = CostParams(alpha=1e-6, beta=1e-10, gamma=5e-11, beta_mem=9e-10, cache_bytes=c)
    # a buffer the cache holds: the ring's chunks cost what the plain line says
    assert allreduce_time("ring", p, c, piecewise) == pytest.approx(
        allreduce_time("ring", p, c, flat))
    # n = 4C: chunks of C bytes, but the cache holds a quarter of the 4C it cycles through
    n, h = 4.0 * c, 0.25
    chunk = 1e-6 + n / p * (h * 1e-10 + (1 - h) * 9e-10)
    want = 2 * (p - 1) * chunk + (p - 1) * n / p * 5e-11  # gamma_mem unset: gamma
    assert allreduce_time("ring", p, n, piecewise) == pytest.approx(want, rel=1e-12)
    assert cm.message_time(c, piecewise, wset=n) == pytest.approx(chunk)
    assert cm.message_time(c, piecewise) == pytest.approx(flat.p2p(c))  # alone: W = m
    # with W = m the share rule is the piecewise line: beta C + beta_mem (m - C)
    assert cm.message_time(n, piecewise) == pytest.approx(1e-6 + 1e-10 * c + 9e-10 * (n - c))
    # still piecewise linear in n beyond C: equal steps in n give equal steps in time
    t = [allreduce_time("ring", p, k * c, piecewise) for k in (2, 3, 4)]
    assert t[2] - t[1] == pytest.approx(t[1] - t[0], rel=1e-9)


def test_mpi_points_are_interpolated_on_log_log_axes():
    pts = [(1024, 1e-5), (4096, 4e-5), (16384, 1e-4)]
    params = CostParams(1e-6, 1e-10, 1e-10, mpi={2: pts})
    assert allreduce_time("mpi", 2, 4096, params) == pytest.approx(4e-5)
    assert allreduce_time("mpi", 2, 2048, params) == pytest.approx(2e-5)  # geometric mean
    assert allreduce_time("mpi", 2, 8, params) == pytest.approx(1e-5)     # below: the first
    assert allreduce_time("mpi", 2, 32768, params) == pytest.approx(2e-4)  # beyond: t n / n_last
    sizes = [1024 * 2 ** (i / 4) for i in range(17)]
    times = [allreduce_time("mpi", 2, n, params) for n in sizes]
    assert times == sorted(times)  # rising points give a rising curve
    a, b = allreduce_line("mpi", 2, params)  # the summary line through the points
    assert a >= 0 and b > 0


def test_shm_is_priced_from_its_measured_points_only():
    pts = [(1024, 2e-5), (16384, 8e-5)]
    params = CostParams(1e-6, 1e-10, 1e-10, shm={4: pts})
    assert cm.has_shm(4, params) and not cm.has_shm(2, params) and cm.has_shm(1, params)
    assert allreduce_time("shm", 4, 4096, params) == pytest.approx(4e-5)  # log-log midpoint
    assert allreduce_time("shm", 1, 4096, params) == 0.0
    with pytest.raises(ConfigError, match="mpiexec -n 2 python -m minipar.bench calibrate"):
        allreduce_time("shm", 2, 4096, params)
    assert allreduce_line("shm", 4, params)[1] > 0


def test_oversubscription_factor():
    assert HOST.slowdown(2) == 1.0 and HOST.slowdown(4) == 2.0 and HOST.slowdown(64) == 2.0
    assert CostParams(1, 1, 1, cores=2).slowdown(64) == 1.0  # one rank per core
    lat = CostParams(alpha=1.0, beta=0.0, gamma=0.0, cores=2, ranks_per_host=4)
    assert allreduce_time("ring", 4, 1e6, lat) == pytest.approx(6.0)  # alpha not scaled
    bw = CostParams(alpha=0.0, beta=1.0, gamma=1.0, cores=2, ranks_per_host=4)
    plain = CostParams(alpha=0.0, beta=1.0, gamma=1.0)
    for alg in ("ring", "rd"):  # all 4 ranks busy in every step: s = 2 throughout
        assert allreduce_time(alg, 4, 1e6, bw) == pytest.approx(
            2 * allreduce_time(alg, 4, 1e6, plain))
    # naive: one pair at a time, s = 1. tree level 0: 2 pairs, 4 ranks send (s = 2) and 2
    # add (s = 1); level 1: one pair (s = 1)
    assert allreduce_time("naive", 4, 1e6, bw) == pytest.approx(
        allreduce_time("naive", 4, 1e6, plain))
    assert allreduce_time("tree", 4, 1e6, bw) == pytest.approx(
        (2 * 2 + 2 * 1) * 1e6 + (1 + 1) * 1e6)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 64), scale=st.floats(0.1, 10))
def test_crossovers_agree_with_best_algorithm(p, scale):
    params = CostParams(**{**HOST.__dict__, "alpha": HOST.alpha * scale})
    segs = crossovers(p, params)
    assert segs[0][0] == 0.0 and [s[0] for s in segs] == sorted(s[0] for s in segs)
    edges = [s[0] for s in segs[1:]] + [2.0**40]
    for (start, alg), stop in zip(segs, edges):
        for x in (start * 1.001 + 1e-3, (start + stop) / 2, stop * 0.999):
            if start < x < stop:
                assert best_algorithm(p, x, params) == alg


def test_host_terms_saved_and_loaded(tmp_path):
    back = cm.load(cm.save(HOST, tmp_path / "host.json"))
    assert back == HOST


def test_gamma_recv_prices_adds_whose_working_set_fits_a_core_cache(tmp_path):
    base = CostParams(alpha=1e-6, beta=1e-10, gamma=5e-11, cache_bytes=16 << 20,
                      gamma_mem=2e-10)
    recv = CostParams(**{**base.__dict__, "private_bytes": 2 << 20, "gamma_recv": 3e-10})
    assert cm.reduce_time(1 << 20, recv) == pytest.approx(3e-10 * (1 << 20))
    assert cm.reduce_time(1 << 20, recv, s=2) == pytest.approx(2 * 3e-10 * (1 << 20))
    # a small chunk of a large buffer: the working set decides, not the chunk
    assert cm.reduce_time(1 << 20, recv, wset=8 << 20) == cm.reduce_time(1 << 20, base)
    assert cm.reduce_time(64 << 20, recv) == cm.reduce_time(64 << 20, base)
    # messages do not change; the ring at 1 MiB pays (p-1)/p n gamma_recv for its adds
    n = 1 << 20
    extra = allreduce_time("ring", 4, n, recv) - allreduce_time("ring", 4, n, base)
    assert extra == pytest.approx(3 * (n / 4) * (3e-10 - 5e-11))
    back = cm.load(cm.save(recv, tmp_path / "r.json"))
    assert back == recv


def test_loaded_steps_price_the_steps_with_more_busy_ranks_than_cores(tmp_path):
    base = CostParams(alpha=1e-6, beta=1e-10, gamma=5e-11, cores=2, ranks_per_host=4)
    x = ((8, 1e-4), (1 << 20, 3e-4))    # exchange
    xa = ((8, 1.5e-4), (1 << 20, 5e-4))  # exchange, then the add
    one = ((8, 9e-5), (1 << 20, 2e-4))   # one-way
    ld = CostParams(**{**base.__dict__, "loaded": {"oneway": one, "exchange": x,
                                                    "exchange_add": xa}})
    n, p = 4 << 20, 4  # ring: chunks of 1 MiB, all 4 ranks busy on 2 cores
    assert allreduce_time("ring", p, n, ld) == pytest.approx(3 * 5e-4 + 3 * 3e-4)
    assert allreduce_time("rd", p, n / 4, ld) == pytest.approx(2 * 5e-4)
    # naive keeps one pair busy at a time (s = 1): the loaded points do not apply
    assert allreduce_time("naive", p, n, ld) == allreduce_time("naive", p, n, base)
    # tree: level 0 has 4 ranks sending (loaded one-way), 2 adding (s = 1: gamma); level 1
    # one pair (s = 1)
    m = 1 << 20
    level1 = 2 * cm.message_time(m, base, wset=m)
    adds = 2 * cm.reduce_time(m, base, wset=m)
    assert allreduce_time("tree", p, m, ld) == pytest.approx(2 * 2e-4 + level1 + adds)
    # one rank per core: s = 1 everywhere, the plain terms
    roomy = CostParams(**{**ld.__dict__, "cores": 4})
    assert allreduce_time("ring", p, n, roomy) == allreduce_time(
        "ring", p, n, CostParams(**{**base.__dict__, "cores": 4}))
    assert cm.load(cm.save(ld, tmp_path / "ld.json")) == ld
