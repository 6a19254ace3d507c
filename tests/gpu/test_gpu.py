"""The CuPy path on a real GPU: gradients, the fused LSTM, training, host crossings, and
communication of device buffers, each against the CPU in float64."""

import json

import numpy as np
import pytest

from minipar.autograd import Tensor, ops
from minipar.autograd.gradcheck import gradcheck
from minipar.bench.gpu import largest_differences
from minipar.core import backend
from minipar.nn.lstm_fused import LSTMLayer
from minipar.training.tasks import default_config, get_task
from mpiutil import run_mpi


@pytest.fixture
def cuda():
    backend.set_device("cuda")
    backend.set_default_dtype("float64")
    yield
    backend.set_device("cpu")
    backend.set_default_dtype("float32")


def _rand(shape, seed, low=None):
    x = np.random.default_rng(seed).normal(size=shape)
    return np.abs(x) + low if low is not None else x


OPS = {
    "add": (ops.add, [(3, 4), (4,)]), "sub": (ops.sub, [(3, 4), (3, 1)]),
    "mul": (ops.mul, [(2, 3), (2, 3)]), "div": (ops.div, [(2, 3), (2, 3)]),
    "matmul": (ops.matmul, [(2, 3, 4), (4, 5)]), "exp": (ops.exp, [(3, 4)]),
    "log": (ops.log, [(3, 4)]), "tanh": (ops.tanh, [(3, 4)]),
    "sigmoid": (ops.sigmoid, [(3, 4)]), "relu": (ops.relu, [(3, 4)]),
    "sum": (lambda a: ops.sum(a, axis=1), [(3, 4)]),
    "mean": (lambda a: ops.mean(a, axis=0, keepdims=True), [(3, 4)]),
    "max": (lambda a: ops.max(a, axis=1), [(3, 4)]),
    "reshape": (lambda a: ops.reshape(a, (4, 3)), [(3, 4)]),
    "transpose": (lambda a: ops.transpose(a, (1, 0)), [(3, 4)]),
    "getitem": (lambda a: ops.getitem(a, (slice(1, 3), 2)), [(3, 4)]),
    "concatenate": (lambda a, b: ops.concatenate([a, b], axis=1), [(2, 3), (2, 2)]),
    "stack": (lambda a, b: ops.stack([a, b], axis=0), [(2, 3), (2, 3)]),
    "pow": (lambda a: ops.pow(a, 2.5), [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradcheck_every_op_on_cuda(cuda, name):
    fn, shapes = OPS[name]
    low = 0.5 if name in ("log", "div", "pow") else None
    inputs = [backend.from_numpy(_rand(s, k, low)) for k, s in enumerate(shapes)]
    res = gradcheck(fn, inputs)
    assert res.ok, str(res)


def test_gradcheck_embedding_cross_entropy_bce_on_cuda(cuda):
    idx = backend.from_numpy(np.array([[0, 2], [2, 1]]))
    assert gradcheck(lambda w: ops.embedding(w, idx), [_rand((3, 4), 0)]).ok
    t = backend.from_numpy(np.array([1, 0, 2]))
    assert gradcheck(lambda z: ops.cross_entropy(z, t), [_rand((3, 4), 1)]).ok
    y = backend.from_numpy(np.array([1.0, 0.0, 1.0]))
    assert gradcheck(lambda z: ops.binary_cross_entropy_with_logits(z, y), [_rand(3, 2)]).ok


def _lstm_run(arrays):
    ts = [Tensor(backend.from_numpy(a), requires_grad=True) for a in arrays]
    out, h, c = LSTMLayer.apply(*ts)
    g = [np.random.default_rng(9 + k).normal(size=t.shape) for k, t in enumerate((out, h, c))]
    loss = sum((t * Tensor(backend.from_numpy(r))).sum() for t, r in zip((out, h, c), g))
    loss.backward()
    outs = [backend.to_numpy(t.data) for t in (out, h, c)]
    return outs + [backend.to_numpy(t.grad) for t in ts]


def test_fused_lstm_on_cuda_equals_the_cpu(cuda):
    B, T, D, H = 4, 6, 5, 7
    arrays = [_rand((B, T, D), 0), _rand((B, H), 1), _rand((B, H), 2),
              _rand((D, 4 * H), 3) * 0.3, _rand((H, 4 * H), 4) * 0.3, _rand(4 * H, 5) * 0.1]
    on_gpu = _lstm_run(arrays)
    backend.set_device("cpu")
    on_cpu = _lstm_run(arrays)
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fifty_training_steps_on_cuda_equal_the_cpu(cuda):
    """The LSTM LM and the classifier, 50 float64 steps: every parameter within 1e-8 of the
    CPU's, relative to its array's largest entry (``bench gpu`` prints the figures)."""
    diff = largest_differences("cuda", steps=50)
    assert set(diff) == {"lstm", "classifier"}
    assert max(diff.values()) < 1e-8, diff


def test_a_training_step_crosses_to_the_host_only_for_the_loss(cuda):
    """One step of the LSTM LM (forward, backward, Adam): the loss scalar is the only copy
    from the device; the batch is the only copy to it."""
    cfg = default_config("lstm", steps=1, seed=0, max_chars=5000, dtype="float64")
    task = get_task("lstm")
    data = task.load_data(cfg)
    model = task.build_model(cfg, len(data.vocab))
    opt = task.make_optimizer(model, cfg)
    batch = next(iter(task.batches(data.train, cfg, 0)))
    backend.reset_transfers()
    loss, count, _ = task.loss(model, batch, None)
    opt.zero_grad()
    (loss * (1.0 / count)).backward()
    opt.step()
    loss.item()
    moved = dict(backend.TRANSFERS)
    assert moved["d2h"] == 1 and moved["d2h_bytes"] == 8, moved
    assert moved["h2d"] <= 2, moved  # the batch's inputs and targets


@pytest.mark.mpi
def test_two_ranks_on_one_gpu_stage_through_the_host(tmp_path):
    code = f"""
import json, numpy as np
from minipar.core import backend
backend.set_device("cuda"); backend.set_default_dtype("float64")
from minipar.comm.communicator import init
from minipar.nn.module import Parameter
from minipar.training.sync import AllreduceSync
comm = init(trace=True)
p = Parameter(backend.from_numpy(np.zeros(1000)))
p.grad = backend.from_numpy(np.arange(1000.0) * (comm.rank + 1))
AllreduceSync(comm, [p], "ring").finish()
events = [e for e in comm.tracer.events if e.kind == "copy"]
out = {{"grad": backend.to_numpy(p.grad).tolist(), "copies": [(e.op, e.sent + e.recv)
       for e in events], "aware": comm.cuda_aware, "note": comm.cuda_note}}
json.dump(out, open(r"{tmp_path}/r%d.json" % comm.rank, "w"))
"""
    run_mpi(2, ["-c", code], timeout=120)
    for r in range(2):
        res = json.loads((tmp_path / f"r{r}.json").read_text())
        np.testing.assert_allclose(res["grad"], np.arange(1000.0) * 3, rtol=1e-12)
        assert res["copies"] == [["d2h", 8000], ["h2d", 8000]], res
        assert isinstance(res["aware"], bool) and res["note"]
    print("CUDA-aware MPI:", res["aware"], "-", res["note"])
