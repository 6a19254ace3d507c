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


def test_step_flops_count_every_product_of_forward_and_backward():
    """B=2, T=3, V=5, E=4, H=6: forward products x W_ih (6 rows, 4 -> 24), h W_hh
    (6 -> 24), h W_out (6 -> 5), at 2 m n k each; backward twice that (both operands)."""
    from argparse import Namespace
    forward = 2 * 6 * 4 * 24 + 2 * 6 * 6 * 24 + 2 * 6 * 6 * 5
    a = Namespace(batch=2, seq=3, vocab=5, embed=4, hidden=6)
    assert bench.step_flops(a) == 3 * forward == 9720
    assert 1e8 < bench.gemm_rate(n=128, repeats=2) < 1e14  # FLOP/s of a real product


# ---- bench parity: every model against PyTorch ------------------------------------------

def test_parity_missing_torch_and_bad_models_are_one_clear_line(monkeypatch, capsys):
    import pytest

    from minipar.bench import parity
    monkeypatch.setitem(sys.modules, "torch", None)
    assert parity.main(["--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch" in err[0].lower()
    with pytest.raises(SystemExit) as e:
        parity.main(["--models", "char,gpt"])
    assert e.value.code == 2 and "unknown gpt" in capsys.readouterr().err


def test_parity_minipar_steps_learn_on_every_model():
    from minipar.bench import parity
    for name in parity.MODELS:
        backend.seed(0)
        with backend.dtype_scope("float32"):
            step = parity._minipar_step(parity._shapes(name))
            losses = [step()[0] for _ in range(4)]
        assert losses[-1] < losses[0], (name, losses)


def test_parity_table_counts_cells_and_warns_of_slow_blas_settings(monkeypatch, capsys):
    import types

    from minipar.bench import parity
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    fake = {"kernel": "Haswell", "numpy": "2", "torch": "2.13"}

    def run(a, n):
        return dict(fake, rows=[{"model": "char", "threads": n, "minipar_ms": 2.0 * n,
                                 "torch_ms": 3.0, "ratio": 2.0 * n / 3.0,
                                 "minipar_optim": 0.05 * n, "torch_optim": 0.04,
                                 "per_op_ms": 4.0, "per_op_ratio": 2.0 * n / 4.0}])
    monkeypatch.setattr(parity, "_run_threads", run)
    assert parity.main(["--models", "char"]) == 0
    out = capsys.readouterr().out
    assert ("at or below 1.0x PyTorch: 1 of 2 cells; optimizer (zero_grad and Adam) at most "
            "10% of minipar's step: 2 of 2") in out
    assert "PyTorch without oneDNN (per-op: its LSTM a step at a time, as minipar's): 2 of 2" in out
    assert "OpenBLAS kernel Haswell" in out
    assert "warning: OPENBLAS_CORETYPE=Haswell is set" in out


def test_parity_per_op_torch_runs_its_lstm_without_onednn():
    """The per-op column is PyTorch with oneDNN off: its LSTM must then leave oneDNN's
    fused kernel (mkldnn_rnn_layer) unused, and the default step must use it."""
    import pytest
    torch = pytest.importorskip("torch")
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch has no oneDNN")
    from torch.profiler import profile

    from minipar.bench import parity
    s = dict(parity._shapes("classifier"), T=5, B=4)
    for onednn in (True, False):
        step = parity._torch_step(torch, s, onednn=onednn)
        with profile() as prof:
            step()
        names = {e.key for e in prof.key_averages()}
        assert ("aten::mkldnn_rnn_layer" in names) is onednn, (onednn, sorted(names)[:20])
