"""GPU tests: they run only where CuPy imports and sees a GPU, and are skipped otherwise
(one clear reason each). ``bash .ci/gpu`` runs them on a GPU machine."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # mpiutil


def _gpu_reason() -> str | None:
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install -e '.[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no GPU found"
    except Exception as exc:  # no driver, or a broken one
        return f"CUDA is not usable: {exc}"
    return None


REASON = _gpu_reason()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/gpu" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.gpu)
            if REASON:
                item.add_marker(pytest.mark.skip(reason=REASON))
