"""The backend: one array module, the dtype policy, seeded draws, clear device errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from minipar import backend as B


def test_default_dtype_and_scope():
    assert B.default_dtype() is np.float32
    with B.dtype_scope("float64"):
        assert B.default_dtype() is np.float64
    assert B.default_dtype() is np.float32
    with pytest.raises(B.BackendError, match="float32 or float64"):
        B.set_default_dtype("float16")


def test_seed_makes_draws_repeatable_and_state_restorable():
    B.seed(5)
    a = B.rng().random(4)
    state = B.get_rng_state()
    b = B.rng().random(4)
    B.seed(5)
    assert np.array_equal(B.rng().random(4), a)
    B.set_rng_state(state)
    assert np.array_equal(B.rng().random(4), b)
    B.seed([5, 1])  # a per-rank stream differs from the shared one
    assert not np.array_equal(B.rng().random(4), a)


def test_host_round_trip_on_the_cpu():
    x = np.arange(3.0)
    assert np.array_equal(B.to_numpy(B.from_numpy(x, dtype=np.float32)), x.astype(np.float32))


def test_unknown_device_is_one_clear_error():
    with pytest.raises(B.BackendError, match="unknown device 'tpu'"):
        B.set_device("tpu")
    assert B.device == "cpu" and B.xp is np


def test_cuda_without_cupy_or_gpu_is_one_clear_error():
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except ImportError:
        has_cupy = False
    if has_cupy:
        pytest.skip("CuPy is installed here; the error path needs a machine without it")
    with pytest.raises(B.BackendError, match="needs CuPy"):
        B.set_device("cuda")
    assert B.device == "cpu"


def test_environment_variable_chooses_the_device_at_import():
    env = dict(os.environ, MINIPAR_DEVICE="cpu")
    code = "from minipar import backend as B; print(B.device)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "cpu"
    env["MINIPAR_DEVICE"] = "nonsense"
    out = subprocess.run([sys.executable, "-c", "import minipar.backend"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "unknown device 'nonsense'" in out.stderr
