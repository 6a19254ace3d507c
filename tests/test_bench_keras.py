"""bench keras: the arrays both frameworks train on, and the TensorFlow yardstick's plumbing
(the real TensorFlow run is a benchmark, docs/benchmarks.md)."""

import os
import stat

import numpy as np
import pytest

from minipar.bench import keras as bench


def test_the_arrays_are_the_listings_split():
    x, y, xv, yv = bench.arrays()
    assert x.shape == (2400, 40) and xv.shape == (600, 40)
    assert len(y) == 2400 and len(yv) == 600 and set(np.unique(y)) == {0, 1}
    assert 0 <= min(x.min(), xv.min()) and max(x.max(), xv.max()) < 1000


def test_a_tensorflow_run_becomes_a_row(tmp_path):
    fake = tmp_path / "python"  # stands in for an interpreter with TensorFlow
    fake.write_text("#!/bin/sh\n"
                    "echo '{\"val_accuracy\": [0.5, 0.75, 0.7], \"seconds\": [3, 1, 2],"
                    " \"version\": \"9.9\"}' > \"$5\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    row = bench.run_tensorflow(str(fake), str(tmp_path / "d.npz"), 4, 3)
    assert row == {"mode": "TensorFlow 9.9", "seed": 4, "last": 0.7, "best": 0.75,
                   "epoch_s": 2}


def test_a_tensorflow_script_that_fails_is_one_error(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named tensorflow' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(SystemExit, match="No module named tensorflow"):
        bench.run_tensorflow(str(fake), str(tmp_path / "d.npz"), 0, 1)


def test_no_such_interpreter_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--seeds", "0", "--tensorflow", os.path.join("/nonexistent", "python")])
    assert exc.value.code == 2
    assert "no such interpreter" in capsys.readouterr().err

