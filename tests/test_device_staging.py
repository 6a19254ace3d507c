"""Device buffers cross to the host only where the design says, visibly: gradient buffers of
a GPU are joined on the device, copied to the host in one piece for the allreduce (a "d2h"
event in the trace) and back in one piece ("h2d"), and every copy is counted.

Run here with a stand-in GPU (tests/fake_device.py); tests/gpu repeats the check on CuPy."""

import json

import numpy as np

from fake_device import fake_device
from minipar.comm.communicator import init
from minipar.core import backend
from minipar.nn.module import Parameter
from minipar.training.sync import AllreduceSync
from mpiutil import ROOT, run_code


def test_one_rank_keeps_gradients_on_the_device():
    """One process has nothing to sum: no bucket is packed, nothing crosses to the host
    (the two-rank test below stages each bucket once each way)."""
    with fake_device():
        comm = init(trace=True)
        params = [Parameter(backend.from_numpy(np.zeros(n))) for n in (5, 7, 3)]
        for k, p in enumerate(params[:2]):
            p.grad = backend.from_numpy(np.arange(p.size, dtype=np.float64) + k)
        backend.reset_transfers()
        AllreduceSync(comm, params, "ring").finish()
        moved = dict(backend.TRANSFERS)
        assert all(backend.on_device(p.grad) for p in params)
        np.testing.assert_array_equal(backend.to_numpy(params[1].grad), np.arange(7.0) + 1)
        np.testing.assert_array_equal(backend.to_numpy(params[2].grad), np.zeros(3))
    assert [e for e in comm.tracer.events if e.kind == "copy"] == []
    assert moved["d2h"] == moved["h2d"] == 0


def test_on_the_cpu_nothing_is_staged():
    comm = init(trace=True)
    p = Parameter(np.zeros(4))
    p.grad = np.ones(4)
    backend.reset_transfers()
    AllreduceSync(comm, [p], "ring").finish()
    assert [e for e in comm.tracer.events if e.kind == "copy"] == []
    assert backend.TRANSFERS["d2h"] == backend.TRANSFERS["h2d"] == 0


def test_two_ranks_sum_device_gradients_through_the_host(tmp_path):
    code = f"""
import json, sys, numpy as np
sys.path.insert(0, {str(ROOT / "tests")!r})
from fake_device import fake_device
from minipar.core import backend
from minipar.comm.communicator import init
from minipar.nn.module import Parameter
from minipar.training.sync import AllreduceSync
comm = init(trace=True)
with fake_device():
    emb = Parameter(backend.from_numpy(np.zeros((3000, 3))))  # 72 KiB: large enough for rows
    emb.sparse_grad = True
    w = Parameter(backend.from_numpy(np.zeros(10)))
    emb.grad = backend.from_numpy(np.zeros((3000, 3)))
    emb.grad[comm.rank * 7] = comm.rank + 1.0
    w.grad = backend.from_numpy(np.arange(10.0) * (comm.rank + 1))
    sync = AllreduceSync(comm, [emb, w], "ring")
    sync.finish()
    out = {{"w": backend.to_numpy(w.grad).tolist(), "emb": backend.to_numpy(emb.grad).tolist(),
           "sparse": sync.sent_sparse, "device": backend.on_device(w.grad),
           "copies": [e.op for e in comm.tracer.events if e.kind == "copy"],
           "note": comm.cuda_note}}
json.dump(out, open(r"{tmp_path}/r%d.json" % comm.rank, "w"))
"""
    run_code(2, code, timeout=60)
    for r in range(2):
        res = json.loads((tmp_path / f"r{r}.json").read_text())
        np.testing.assert_array_equal(res["w"], np.arange(10.0) * 3)
        emb = np.zeros((3000, 3))
        emb[0], emb[7] = 1.0, 2.0
        np.testing.assert_array_equal(res["emb"], emb)
        assert res["sparse"] == 1 and res["device"]
        assert res["copies"] == ["d2h", "h2d", "d2h", "h2d"]  # dense bucket, then the rows
        assert "no CUDA support" in res["note"]  # the pip mpich wheel is not CUDA-aware


def test_sparse_rule_and_touched_rows():
    from minipar.comm.sparse import sparse_is_cheaper, touched_rows

    g = np.zeros((10, 4))
    g[[2, 7]] = 1.0
    np.testing.assert_array_equal(touched_rows(g), [2, 7])
    # K (D + 1) < 2 V D: 15 rows of 5 values beat 2 * 10 * 4 = 80 values; 16 do not
    assert sparse_is_cheaper([8, 7], (10, 4)) and not sparse_is_cheaper([8, 8], (10, 4))
