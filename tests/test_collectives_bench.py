"""The collective benchmark: its rows, its checks, its command line (short runs only)."""

import json
import subprocess
import sys

import pytest

from minipar.bench.collectives import default_sizes
from minipar.core.units import parse_size
from minipar.core.errors import UserError
from mpiutil import ROOT, run_mpi


def test_sizes():
    assert parse_size("8") == 8 and parse_size("64K") == 65536
    assert parse_size("16M") == parse_size("16MiB") == 16 << 20 and parse_size("1G") == 1 << 30
    with pytest.raises(UserError, match="bad size"):
        parse_size("lots")
    sizes = default_sizes()
    assert sizes[0] == 8 and sizes[-1] == 64 << 20 and len(sizes) == 24


def test_dispatcher_lists_benchmarks_and_rejects_unknown():
    run = dict(capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = subprocess.run([sys.executable, "-m", "minipar.bench", "--help"], **run)
    assert out.returncode == 0 and "collectives" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "minipar.bench", "nope"], **run)
    assert bad.returncode == 2 and "unknown benchmark 'nope'" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "minipar.bench", "collectives", "--sizes", "x"],
                         **run)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "minipar: error: bad size 'x': use bytes, or 64K, 16M, 1G")


@pytest.mark.mpi
def test_json_rows_on_two_ranks():
    proc = run_mpi(2, ["-m", "minipar.bench", "collectives", "--sizes", "8,1K,3000",
                       "--iters", "2", "--warmup", "1", "--json"], timeout=60)
    rows = json.loads(proc.stdout)
    assert {r["algo"] for r in rows} == {"mpi", "ring", "tree", "rd", "naive", "shm"}
    assert sorted({r["bytes"] for r in rows}) == [8, 1024, 3000]
    for r in rows:
        assert r["wrong"] == 0 and r["time_us"] > 0
        assert abs(r["busbw_gbps"] - r["algbw_gbps"] * 2 * (2 - 1) / 2) < 1e-12
        assert abs(r["algbw_gbps"] - r["bytes"] / r["time_us"] / 1e3) < 1e-9


def test_scaling_targets_ratios_and_baselines(monkeypatch, capsys):
    """--targets: one process on one BLAS thread and on all, then 2 and 4 ranks; the ratios
    are read off those four runs (run_point stands in for the mpiexec runs)."""
    from minipar.bench import scaling
    seen = []
    rate = {(1, "1"): 100.0, (1, None): 150.0, (2, "1"): 190.0, (4, "1"): 170.0,
            (1, "1", "32"): 98.0, (1, "1", "16"): 88.2, (1, "1", "128"): 90.0,
            (1, "1", "64"): 60.0}

    def fake(model, ranks, steps, extra, env=None):
        seen.append((model, ranks, steps, env.get("OPENBLAS_NUM_THREADS"), extra))
        key = (ranks, env.get("OPENBLAS_NUM_THREADS"))
        return {"tokens_per_s": rate.get(key + tuple(extra[-1:]), rate[key])}
    monkeypatch.setattr(scaling, "run_point", fake)
    assert scaling.main(["--targets", "--models", "lstm,mlp"]) == 0
    assert [s[:3] for s in seen[:4]] == [("lstm", 1, 200), ("lstm", 1, 200), ("lstm", 2, 200),
                                          ("lstm", 4, 200)]
    # then one process, one thread, at the rows a rank gets: the LSTM's global batch is 64
    assert [(s[1], s[3], s[4]) for s in seen[4:6]] == [(1, "1", ["--batch-size", "32"]),
                                                       (1, "1", ["--batch-size", "16"])]
    assert seen[6][2] == 1000  # the MLP's 2 ms steps need more of them
    out = capsys.readouterr().out
    lstm = next(line for line in out.splitlines() if line.startswith("lstm"))
    # E(2) 190 / 200, p=2 over every core 190 / 150, p=4 over p=2 170 / 190
    assert "0.95 ok" in lstm and "1.27 --" in lstm and "0.89 --" in lstm
    mlp = next(line for line in out.splitlines() if line.startswith("mlp"))
    assert "0.95 ok" in mlp  # E(2) against the MLP's own target, 0.75
    # the bounds: E(2) <= r(32) / r(64) = 98 / 100, p4 / p2 <= r(16) / r(32) = 88.2 / 98
    assert ("lstm: one process, one thread, at 32 and 16 rows: 98 and 88 tokens/s, so even "
            "with free communication E(2) <= 0.98 and p4 / p2 <= 0.90 on 2 cores") in out
    assert "mlp: one process, one thread, at 128 and 64 rows" in out  # its batch is 256
    assert "E(2) <= 0.90 and p4 / p2 <= 0.67" in out
    row = {"model": "classifier", "batch": 32, "half": 1.0, "quarter": 0.8, "e2_bound": 1.17,
           "p4_bound": 0.8}
    assert scaling.bound_line(row).endswith("the ratios E(2) 1.17, p4 / p2 0.80 are no bound "
                                            "here: a rank's rows are chosen to pad little")
    seen.clear()
    rows = scaling.targets(["lstm"], 5, [], repeat=3)  # the six runs three times over
    assert [s[1] for s in seen] == [1, 1, 2, 4, 1, 1] * 3 and rows[0]["p2"] == 190.0
    seen.clear()
    scaling.targets(["lstm"], 5, ["--batch-size", "128"])  # a batch given: its halves
    assert [s[4][-1] for s in seen[4:]] == ["64", "32"]


def test_the_scaling_targets_say_what_e2_one_process_on_every_core_asks_for():
    from minipar.bench.scaling import needs_line
    row = {"model": "lstm", "one_thread": 1000.0, "all_threads": 1200.0}
    assert needs_line(row).endswith("gains 1.20x from its other cores, so p=2 >= 1.5x of it "
                                    "needs E(2) >= 0.90")
    row["all_threads"] = 1600.0   # 0.75 * 1.6 = 1.2: only a faster-than-linear E(2) passes
    assert needs_line(row).endswith("needs E(2) >= 1.20 (above 1: faster than linear)")
