"""The LSTM benchmark's own plumbing; the timing itself needs PyTorch and is never a test."""

import sys

import numpy as np

from minipar.core import backend
from minipar.bench import lstm as bench
from minipar.nn.optim import Adam


def test_missing_torch_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)   # makes `import torch` fail
    assert bench.main(["--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch" in err[0].lower()


def test_minipar_step_of_the_benchmark_model_learns():
    backend.seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=(2, 5))
    targets = np.roll(ids, -1, axis=1).reshape(-1)
    model = bench.CharLSTM(vocab=7, embed=4, hidden=6)
    opt = Adam(model.parameters(), lr=0.05)
    times = {k: [] for k in ("fwd", "bwd", "opt", "step")}
    losses = [bench._minipar_step(model, opt, ids, targets, times) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert all(len(v) == 15 for v in times.values())
