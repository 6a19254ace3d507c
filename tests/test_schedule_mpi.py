"""Plans executed through the traced communicator, and the calibration benchmark."""

import json
import os

import pytest
from mpiutil import run_code, run_mpi

from minipar.bench import calibrate, predict
from minipar.comm.communicator import init
from minipar.planning.actions import PlanError
from minipar.planning.plan import execute_plan
from minipar.planning.policies import list_schedule, lpt

_EXEC = r"""
import json
import numpy as np
from minipar.comm.communicator import init
from minipar.planning.plan import execute_plan
from minipar.planning.policies import list_schedule, lpt
from minipar.planning.simulate import verify

comm = init(trace=True)
costs = [1, 2, 3, 1, 2, 3, 1, 2]
deps = {2: [0, 1], 3: [2], 4: [2], 5: [3, 4], 6: [0], 7: [5, 6]}

def value(t, results):  # t + the sum of its inputs, as 8 bytes of float64
    ins = [np.frombuffer(results[u].tobytes(), np.float64)[0] for u in deps.get(t, [])]
    return np.array([t + sum(ins)], np.float64)

plan = list_schedule(costs, deps, comm.size, nbytes=8)
verify(plan)
got = execute_plan(comm, plan, value)
serial = {}
for t in range(len(costs)):
    serial[t] = value(t, serial)
assert sorted(got) == list(range(len(costs)))
assert all(np.frombuffer(got[t].tobytes(), np.float64)[0] == serial[t][0] for t in got)
assert execute_plan(comm, lpt(costs, comm.size), lambda t, r: t * t) == {
    t: t * t for t in range(len(costs))}
rows = comm.report(table=False)
if comm.rank == 0:
    sends = [sum(a.kind == "send" for a in acts) for acts in plan.actions]
    print("SENT", json.dumps([[r["msgs_sent"] for r in rows], sends]))
"""


def test_execute_plan_one_rank():
    comm = init()
    plan = list_schedule([1, 2, 3], {2: [0, 1]}, 1)
    out = execute_plan(comm, plan, lambda t, r: t + sum(r.get(u, 0) for u in (0, 1)) * (t == 2))
    assert out == {0: 0, 1: 1, 2: 3}
    with pytest.raises(PlanError, match="2 ranks"):
        execute_plan(comm, lpt([1, 2], 2), lambda t, r: t)


@pytest.mark.mpi
def test_execute_plan_matches_serial_and_trace_counts_messages():
    out = run_code(3, _EXEC, timeout=60).stdout
    line = next(x for x in out.splitlines() if x.startswith("SENT "))
    traced, planned = json.loads(line[5:])
    assert traced == planned and sum(planned) > 0  # the trace saw every planned message


@pytest.mark.mpi
def test_calibrate_measures_loaded_steps_when_ranks_outnumber_cores(tmp_path):
    out = tmp_path / "cal.json"
    proc = run_mpi(4, ["-m", "minipar.bench.calibrate", "--quick", "--out", str(out)],
                   timeout=120)
    loaded = json.loads(out.read_text())["loaded"]
    if (os.cpu_count() or 1) >= 4:  # one rank per core: nothing to measure under load
        assert loaded is None and "every rank busy" not in proc.stdout
        return
    assert "every rank busy" in proc.stdout
    assert set(loaded) == {"oneway", "exchange", "exchange_add"}
    for pts in loaded.values():
        assert [n for n, _ in pts] == [8, 65536, 262144] and all(t > 0 for _, t in pts)


@pytest.mark.mpi
def test_calibrate_saves_positive_parameters(tmp_path):
    out = tmp_path / "cal.json"
    proc = run_mpi(2, ["-m", "minipar.bench.calibrate", "--quick", "--out", str(out)], timeout=90)
    assert "alpha" in proc.stdout and "saved" in proc.stdout
    data = json.loads(out.read_text())
    assert data["alpha"] > 0 and data["beta"] > 0 and data["gamma"] > 0
    pts = data["mpi"]["2"]  # MPI's Allreduce at 1.5x the ping-pong sizes, for interpolation
    assert [n for n, _ in pts] == [3 * n // 2 for n in (128, 512, 2048, 8192, 32768, 131072,
                                                        262144)]
    assert all(t > 0 for _, t in pts)
    shm = data["shm"]["2"]  # allreduce_shm at the same sizes: both ranks are on this host
    assert [n for n, _ in shm] == [n for n, _ in pts] and all(t > 0 for _, t in shm)
    assert "shm allreduce" in proc.stdout
    assert data["loaded"] is None or (os.cpu_count() or 1) < 2
    if calibrate.private_cache():
        assert data["gamma_recv"] > 0 and data["private_bytes"] == calibrate.private_cache()


def test_predict_writes_tables_and_plots(tmp_path, capsys):
    assert predict.main(["--preset", "10gbe", "--p", "2,3", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "predict.md").read_text()
    assert "| 1024 |" in text and "best from:" in text
    for name in ("predict_allreduce.png", "predict_scaling.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert predict.main(["--p", "x"]) == 2
