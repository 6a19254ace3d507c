"""``bench gpu`` on a machine without a GPU: its parity check runs (CPU against CPU: no
difference at all), and the benchmark itself says in one line why it cannot run."""

import importlib.util

import pytest

from minipar.bench import gpu


def test_largest_differences_of_the_cpu_against_itself_are_zero():
    diff = gpu.largest_differences("cpu", steps=3)
    assert diff == {"lstm": 0.0, "classifier": 0.0}


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_bench_gpu_without_cupy_is_one_line_and_status_two(capsys):
    assert gpu.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minipar: error: bench gpu: device 'cuda' needs")
