"""The backend: one array module, the dtype policy, seeded draws, clear device errors."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from minipar.core import backend



def test_default_dtype_and_scope():
    assert backend.default_dtype() is np.float32
    with backend.dtype_scope("float64"):
        assert backend.default_dtype() is np.float64
    assert backend.default_dtype() is np.float32
    with pytest.raises(backend.BackendError, match="float32 or float64"):
        backend.set_default_dtype("float16")


def test_seed_makes_draws_repeatable_and_state_restorable():
    backend.seed(5)
    a = backend.rng().random(4)
    state = backend.get_rng_state()
    b = backend.rng().random(4)
    backend.seed(5)
    assert np.array_equal(backend.rng().random(4), a)
    backend.set_rng_state(state)
    assert np.array_equal(backend.rng().random(4), b)
    backend.seed([5, 1])  # a per-rank stream differs from the shared one
    assert not np.array_equal(backend.rng().random(4), a)


def test_host_round_trip_on_the_cpu():
    x = np.arange(3.0)
    back = backend.to_numpy(backend.from_numpy(x, dtype=np.float32))
    assert np.array_equal(back, x.astype(np.float32))


def test_unknown_device_is_one_clear_error():
    with pytest.raises(backend.BackendError, match="unknown device 'tpu'"):
        backend.set_device("tpu")
    assert backend.device == "cpu" and backend.module() is np


def test_cuda_without_cupy_or_gpu_is_one_clear_error():
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except ImportError:
        has_cupy = False
    if has_cupy:
        pytest.skip("CuPy is installed here; the error path needs a machine without it")
    with pytest.raises(backend.BackendError, match="needs CuPy"):
        backend.set_device("cuda")
    assert backend.device == "cpu"


def test_environment_variable_chooses_the_device_at_import():
    env = dict(os.environ, MINIPAR_DEVICE="cpu")
    code = "from minipar.core import backend; print(backend.device)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "cpu"
    env["MINIPAR_DEVICE"] = "nonsense"
    out = subprocess.run([sys.executable, "-c", "import minipar.core.backend"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "minipar: error: MINIPAR_DEVICE=nonsense: unknown device 'nonsense': use 'cpu' or 'cuda'"]


def test_the_trainer_takes_its_device_from_the_environment_unless_told(monkeypatch):
    """``--device`` left out: MINIPAR_DEVICE decides, not a default of cpu that overrides it."""
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here; the error path needs a machine without it")
    from minipar.core.errors import ConfigError
    from minipar.training.config import parse_args
    from minipar.training.run import setup

    monkeypatch.setenv("MINIPAR_DEVICE", "cuda")
    cfg = parse_args(["--steps", "1"])
    assert cfg.device is None
    with pytest.raises(ConfigError, match="needs CuPy"):
        setup(None, cfg)
    monkeypatch.setenv("MINIPAR_DEVICE", "cpu")
    cfg.device = "cuda"  # the flag wins over the environment
    with pytest.raises(ConfigError, match="needs CuPy"):
        setup(None, cfg)
