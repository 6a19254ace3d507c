"""Grids of independent jobs over ranks, the shard-balance benchmark and the cost-model check."""

import json
import re

import pytest
from mpiutil import run_mpi

from minipar import grid
from minipar.training import grid_jobs
from minipar.bench import costcheck
from minipar.core.errors import UserError
from minipar.planning import costmodel as cm
from minipar.planning.policies import assign_grid, lpt


def _rows(out: str) -> list[list[str]]:
    """Job rows of the summary table: | job | settings | rank | ..."""
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in out.splitlines() if re.match(r"\| \d+ \| \w+=", line)]


def test_jobs_costs_and_plan_follow_the_grid():
    args = grid._parser().parse_args(["ngram", "--orders", "2,5", "--smoothing", "kn,addk"])
    jobs = grid_jobs.make_jobs(args)
    assert jobs == [{"order": 2, "smoothing": "kn"}, {"order": 2, "smoothing": "addk"},
                    {"order": 5, "smoothing": "kn"}, {"order": 5, "smoothing": "addk"}]
    costs = [grid_jobs.estimate(j, args, 1000, 50) for j in jobs]
    assert costs == [3000.0, 2000.0, 7500.0, 5000.0]
    plan = lpt(costs, 2)
    assert [plan.tasks(r) for r in range(2)] == assign_grid(jobs, 2, costs) == [[1, 2], [0, 3]]
    lstm = grid._parser().parse_args(["lstm", "--hidden", "8,16", "--layers", "1,2"])
    jobs = grid_jobs.make_jobs(lstm)
    assert len(jobs) == 4
    c = [grid_jobs.estimate(j, lstm, 1000, 50) for j in jobs]
    assert c[0] < c[1] < c[3] and c[0] < c[2] < c[3]  # bigger and deeper cost more


def test_bad_options_are_one_line(capsys):
    assert grid.main(["ngram", "--smoothing", "kn,nope"]) == 2
    assert "--smoothing nope" in capsys.readouterr().err
    assert grid.main(["lstm", "--hidden", "8,x"]) == 2


def test_ngram_and_lstm_grids_on_one_rank(capsys):
    assert grid.main(["ngram", "--orders", "1,2", "--smoothing", "kn,addk",
                      "--data", "synthetic"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert all(float(r[-1]) > 1 for r in rows)  # valid perplexity
    assert grid.main(["lstm", "--hidden", "4,8", "--steps", "2", "--batch", "2", "--seq", "4",
                      "--embed", "4", "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert len(_rows(out)) == 2 and "makespan: measured" in out


@pytest.mark.mpi
def test_grid_on_three_ranks_runs_each_job_once(tmp_path):
    trace = tmp_path / "grid.json"
    out = run_mpi(3, ["-m", "minipar.grid", "ngram", "--orders", "1,2,3", "--smoothing",
                      "kn,addk", "--data", "synthetic", "--trace", str(trace)], timeout=60).stdout
    rows = _rows(out)
    assert sorted(int(r[0]) for r in rows) == list(range(6))
    assert {r[2] for r in rows} == {"0", "1", "2"}
    events = json.loads(trace.read_text())["traceEvents"]
    tasks = sorted(e["name"] for e in events if e.get("cat") == "compute")
    assert tasks == [f"T{t}" for t in range(6)]  # one compute span per job, on its rank


@pytest.mark.mpi
def test_schedule_benchmark_balances_shards():
    out = run_mpi(2, ["-m", "minipar.bench", "schedule", "--shards", "12", "--unit", "300",
                      "--reps", "1", "--json"], timeout=60).stdout
    rows = {r["policy"]: r for r in json.loads(out[out.index("["):])}
    assert set(rows) == {"block", "round_robin", "lpt"}
    assert rows["lpt"]["imbalance_planned"] <= rows["block"]["imbalance_planned"]
    assert all(r["measured_s"] > 0 and r["predicted_s"] > 0 for r in rows.values())


def test_costcheck_compares_saved_runs(tmp_path, capsys):
    """Ratios come from the saved benchmark rows and the calibration file."""
    params = cm.CostParams(alpha=1e-6, beta=1e-9, gamma=0.0, source="test")
    cal = cm.save(params, tmp_path / "cal.json")
    rows = [dict(algo=a, ranks=2, bytes=n, time_us=t) for a, n, t in
            [("ring", 8, 4.0), ("ring", 1 << 20, 1100.0), ("naive", 1 << 20, 3000.0)]]
    saved = tmp_path / "p2.json"
    saved.write_text("# header\n" + json.dumps(rows))
    assert costcheck.main(["--ranks", "2", "--from", f"2={saved}", "--calibration",
                           str(cal), "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    # ring at p=2: 2 alpha + 2 (1/2) n beta = 2 us + 1048.6 us for 1 MiB
    got = costcheck.compare(rows, cm.load(cal))
    assert got[1]["predicted_us"] == pytest.approx(2 + 1048.576)
    assert "| 2 | ring | 1 of 1 |" in out and "| 2 | naive | 0 of 1 |" in out
    assert (tmp_path / "t.md").read_text().startswith("p = 2")
    assert costcheck.main(["--ranks", "2", "--from", f"2={saved}", "--calibration",
                           str(tmp_path / "none.json")]) == 2


def test_costcheck_repeats_report_median_and_range():
    params = cm.CostParams(alpha=1e-6, beta=1e-9, gamma=0.0, source="test")
    base = [dict(algo="ring", ranks=2, bytes=1 << 20, time_us=t) for t in (1100.0,)]
    runs = [costcheck.compare([dict(base[0], time_us=t)], params) for t in (1000, 1100, 1600)]
    (row,) = costcheck.aggregate(runs)
    pred = 2 + 1048.576
    assert row["time_us"] == 1100 and row["predicted_us"] == pytest.approx(pred)
    assert row["lo"] == pytest.approx(1000 / pred) and row["hi"] == pytest.approx(1600 / pred)
    assert row["ok"] == 2 and row["repeats"] == 3  # 1600 / 1050 = 1.52 is outside 25%
    assert "(1.05; 0.95-1.52)" in costcheck.table([row], params)
    text = costcheck.summary([row])
    assert "| 2 | ring | 1 of 1 | 1.05 - 1.05 | 2 of 3 |" in text
    # |ratio - 1| over the three repeats: 0.048, 0.048 (1100 / 1050.6), 0.523
    errs = costcheck.errors([row])
    assert errs == pytest.approx(sorted(abs(t / pred - 1) for t in (1000, 1100, 1600)))
    assert f"{100 * errs[1]:.0f}% | {100 * errs[2]:.0f}% |" in text
    assert "median 5%, 90th percentile 52%" in text
    with pytest.raises(UserError, match="--repeat"):
        costcheck.run(["--repeat", "0"])


@pytest.mark.mpi
def test_steps_benchmark_times_the_parts_of_a_reduction_step():
    out = run_mpi(2, ["-m", "minipar.bench", "steps", "--sizes", "1K,64K", "--seconds",
                      "0.005", "--json"], timeout=60).stdout
    rows = json.loads(out[out.index("["):])
    assert [r["bytes"] for r in rows] == [1024, 65536] and rows[0]["ranks"] == 2
    for r in rows:
        assert min(r["exchange"], r["add"], r["exchange_add"]) > 0
        assert r["excess"] == pytest.approx(r["exchange_add"] - r["exchange"] - r["add"])
    proc = run_mpi(2, ["-m", "minipar.bench", "steps", "--sizes", "0"], timeout=60, check=False)
    assert proc.returncode != 0 and "bad size" in proc.stderr
