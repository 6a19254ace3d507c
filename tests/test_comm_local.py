"""The communicator on one rank, without mpiexec: same interface, traced, with timeouts."""

import io
import json
import time

import numpy as np
import pytest

from minipar.core.errors import ConfigError
from minipar.comm import collectives as C
from minipar.comm import communicator as comm_mod
from minipar.comm import world
from minipar.comm import watchdog
from minipar.comm.communicator import CollectiveMismatch, CommTimeout, init

LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                 "MINIPAR_COMM")


@pytest.fixture
def alone(monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)


def test_falls_back_to_one_rank_outside_mpiexec(alone):
    comm = init()
    assert (comm.rank, comm.size, comm.backend, comm.world_rank) == (0, 1, "self", 0)
    assert not comm.tracer.on


def test_point_to_point_to_oneself(alone):
    comm = init()
    a, b = np.arange(5.0), np.empty(5)
    comm.send(a, 0, tag=5)
    assert comm.recv(b, 0, 5) == (0, 5) and (b == a).all()
    assert comm.sendrecv(a * 2, 0, b, 0, tag=2) == (0, 2) and (b == a * 2).all()
    r = comm.irecv(b, None, None)
    s = comm.isend(a * 3, 0, 9)
    assert comm.waitall([r, s]) == [(0, 9), None] and (b == a * 3).all()
    r = comm.irecv(b, 0, 4)
    assert not comm.testall([r])  # nothing sent yet: not finished, and no wait
    s = comm.isend(a * 5, 0, 4)
    assert comm.testall([r, s]) and (b == a * 5).all()
    with pytest.raises(RuntimeError, match="no matching send"):
        comm.recv(b, 0, 1)
    with pytest.raises(ValueError, match="one rank"):
        comm.send(a, 1)


def test_mpi_collectives_on_one_rank_are_copies(alone):
    comm = init()
    x = np.arange(6.0)
    assert (comm.allreduce(x.copy()) == x).all()
    out = np.empty(6)
    assert (comm.allreduce(x, out, op="max") == x).all()
    assert (comm.bcast(x.copy()) == x).all()
    assert (comm.reduce(x.copy()) == x).all()
    assert (comm.allgather(x, np.empty(6)) == x).all()
    assert (comm.allgatherv(x, np.empty(6), [6]) == x).all()
    assert (comm.reduce_scatter(x, np.empty(6)) == x).all()
    assert (comm.reduce_scatter(x, np.empty(6), [6]) == x).all()
    assert (comm.alltoall(x, np.empty(6)) == x).all()
    assert (comm.alltoallv(x, [6], np.empty(6), [6]) == x).all()
    assert (comm.gather(x, np.empty(6)) == x).all()
    assert (comm.gatherv(x, np.empty(6), [6]) == x).all()
    assert (comm.scatter(x, np.empty(6)) == x).all()
    comm.barrier()
    with pytest.raises(ValueError, match="unknown reduction"):
        comm.allreduce(x, op="mean")


def test_object_helpers(alone):
    comm = init()
    assert comm.bcast_obj({"lr": 0.1}) == {"lr": 0.1}
    assert comm.allgather_obj("x") == ["x"]
    assert comm.gather_obj((1, 2)) == [(1, 2)]
    assert comm.allreduce_obj(3, "max") == 3
    assert comm.allreduce_obj([1], lambda a, b: a + b) == [1]
    with pytest.raises(ValueError, match="unknown reduction"):
        comm.allreduce_obj(1, "avg")


def test_tracing_show_comm_and_phases(alone):
    out = io.StringIO()
    comm = init(trace=True, show_comm=True, stream=out)
    comm.set_step(3)
    with comm.phase("sync"):
        comm.send(np.zeros(10, np.float32), 0, tag=5)
    comm.recv(np.zeros(10, np.float32), 0, 5)
    comm.allreduce(np.zeros(4))
    with comm.tracer.compute("forward"):
        pass
    lines = out.getvalue().splitlines()
    assert lines == ["[r0] step 3 (sync) send 40 B -> r0 tag 5",
                     "[r0] step 3 recv 40 B <- r0 tag 5",
                     "[r0] step 3 mpi allreduce 32 B"]
    evs = comm.tracer.events
    assert [e.op for e in evs] == ["send", "recv", "allreduce", "forward"]
    assert [e.seq for e in evs[:3]] == [1, 2, 3] and evs[2].cseq == 1
    assert evs[0].phase == "sync" and evs[1].phase is None and evs[0].step == 3
    assert evs[0].skey == evs[1].rkey  # the send and its receive are paired
    assert all(e.t1 >= e.t0 for e in evs)


def test_report_writes_table_chrome_trace_and_png(alone, tmp_path):
    comm = init(trace=True)
    C.allreduce_ring(comm, np.ones(8))
    comm.send(np.ones(3), 0, tag=1)
    comm.recv(np.ones(3), 0, tag=1)
    table = io.StringIO()
    rows = comm.report(chrome=tmp_path / "t.json", png=tmp_path / "t.png", stream=table)
    assert rows[0]["msgs_sent"] == 1 and rows[0]["msgs_recv"] == 1
    assert "rank" in table.getvalue()
    trace = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert sum(e["ph"] == "s" for e in trace) == 1
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert comm.tracer.enabled  # the report's own traffic was not traced, and tracing goes on
    assert len(comm.tracer.events) == 3


def test_stall_watchdog_names_the_call(alone):
    comm = init(timeout=0.05)
    comm.set_step(7)
    comm.allreduce(np.zeros(2))
    t0 = time.perf_counter()
    with comm.phase("sync"), pytest.raises(CommTimeout) as info:
        comm.recv(np.zeros(2), 0, 43)
    assert time.perf_counter() - t0 < 5
    e = info.value
    assert isinstance(e, RuntimeError) and (e.rank, e.op, e.tag, e.step) == (0, "recv", 43, 7)
    msg = str(e)
    assert msg.startswith("rank 0: recv with r0 on world (tag 43, step 7, phase sync)")
    assert "mpi allreduce 16 B" in msg  # the last calls of this rank
    with pytest.raises(ValueError, match="positive"):
        comm.set_timeout(0)
    comm.set_timeout(None)


def test_desync_guard_on_one_rank_passes_and_is_traced(alone):
    comm = init(trace=True, check_collectives=True)
    comm.allreduce(np.zeros(3))
    C.allreduce_tree(comm, np.zeros(3))
    kinds = [(e.kind, e.op) for e in comm.tracer.events]
    assert kinds == [("check", "check"), ("mpi", "allreduce"), ("check", "check"),
                     ("coll", "allreduce")]


def test_mismatch_message_names_ranks_and_calls():
    fp = [watchdog.fingerprint(5, "allreduce", "ring", 100, np.float32, -1),
          watchdog.fingerprint(5, "bcast", "mpi", 100, np.float32, 0),
          watchdog.fingerprint(5, "allreduce", "ring", 100, np.float32, -1)]
    err = watchdog.mismatch(np.stack(fp), "world")
    assert isinstance(err, CollectiveMismatch)
    assert str(err) == ("collective mismatch on world: r0,r2 called allreduce(ring, n=100, "
                        "float32) as collective #5; r1 called bcast(mpi, n=100, float32, "
                        "root 0) as collective #5")
    assert watchdog.mismatch(np.stack([fp[0], fp[0]]), "world") is None


def test_split_on_one_rank(alone):
    comm = init()
    sub = comm.split(0, name="dp")
    assert (sub.size, sub.rank, sub.name, sub.tracer) == (1, 0, "dp", comm.tracer)
    assert comm.split(None) is None


def test_heavy_yield_only_when_oversubscribed():
    env = {"PMI_SIZE": "4", "MPI_LOCALNRANKS": "4"}
    note = world.yield_when_oversubscribed(env, cores=2)
    assert env[comm_mod.HEAVY_YIELD_VAR] == "1" and "4 ranks on 2 cores" in note
    env = {"PMI_SIZE": "2"}
    assert world.yield_when_oversubscribed(env, cores=2) is None and len(env) == 1
    env = {"PMI_SIZE": "8", comm_mod.HEAVY_YIELD_VAR: "0"}  # the user's choice stands
    assert world.yield_when_oversubscribed(env, cores=2) is None
    assert env[comm_mod.HEAVY_YIELD_VAR] == "0"


def test_hand_written_collectives_on_one_rank(alone):
    comm = init()
    x = np.arange(7.0)
    for name in C.ALLREDUCE:
        assert (C.get_allreduce(name)(comm, x.copy()) == x).all()
    assert (C.broadcast_tree(comm, x.copy()) == x).all()
    assert (C.reduce_scatter_ring(comm, x.copy()) == x).all()
    assert (C.allgather_ring(comm, x.copy()) == x).all()
    assert (C.alltoall_pairwise(comm, x.copy()) == x).all()
    m = np.arange(6.0).reshape(2, 3)  # any C-contiguous shape, worked on flat
    assert C.allreduce_ring(comm, m) is m
    with pytest.raises(ValueError, match="C-contiguous"):
        C.allreduce_ring(comm, np.zeros((3, 4))[:, 1])


def test_get_allreduce_names_and_plugins(alone):
    assert C.get_allreduce("ring") is C.allreduce_ring
    with pytest.raises(ConfigError, match="use mpi, naive, tree, rd, ring, shm or module:function"):
        C.get_allreduce("butterfly")
    with pytest.raises(ConfigError, match="no no_such_module_xyz.py in this folder"):
        C.get_allreduce("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="no function"):
        C.get_allreduce("minipar.comm.collectives:nothing")
    mine = C.get_allreduce("minipar.comm.collectives:allreduce_rd")
    comm = init(trace=True)
    x = np.ones(4)
    assert mine(comm, x) is x
    spans = [e for e in comm.tracer.events if e.kind == "coll"]
    assert [e.algo for e in spans] == ["rd", "minipar.comm.collectives:allreduce_rd"]


def test_without_mpi4py(alone, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # "import mpi4py" now fails
    monkeypatch.setenv("MINIPAR_COMM", "mpi")
    comm = init()
    assert comm.size == 1 and comm.backend == "self"
    assert comm.notes == ["mpi4py not importable: running as one rank"]
    monkeypatch.setenv("PMI_SIZE", "3")
    monkeypatch.setenv(comm_mod.HEAVY_YIELD_VAR, "0")
    with pytest.raises(RuntimeError, match="launched on 3 ranks but mpi4py cannot be imported"):
        init()
