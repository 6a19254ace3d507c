"""A checkpoint taken on p ranks resumes on q ranks on the same loss curve (float64): the
carried LSTM state is saved by global row and shared out again, so nothing restarts."""

import json

import numpy as np
import pytest

from minipar.training import checkpoint as ckpt
from mpiutil import run_mpi

# No dropout: each rank draws its own masks, so with it no two world sizes could agree.
LSTM = ["--max-chars", "3000", "--hidden", "8", "--embed", "4", "--seq-len", "5",
        "--batch-size", "6", "--sample-chars", "0", "--quiet", "--dtype", "float64",
        "--lr", "0.01", "--lr-schedule", "constant"]  # the runs stop at 4 of --steps 8


def _train(n, out, *more):
    run_mpi(n, ["-m", "minipar.train", *LSTM, "--out", str(out), *more], timeout=60)


def _losses(run_dir) -> dict:
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Uninterrupted runs of 8 steps, per number of ranks."""
    base = tmp_path_factory.mktemp("straight")
    out = {}
    for p in (2, 3, 4):
        _train(p, base / f"p{p}", "--steps", "8")
        out[p] = base / f"p{p}"
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("p,q", [(2, 3), (3, 2), (4, 1)])
def test_resume_on_another_number_of_ranks_is_exact(tmp_path, straight, p, q):
    run = tmp_path / "run"
    _train(p, run, "--steps", "4")
    proc = run_mpi(q, ["-m", "minipar.train", "--resume", str(run), "--steps", "8",
                       "--no-quiet"], timeout=60)
    assert f"resumed on {q} ranks from {p}" in proc.stdout and "restarts" not in proc.stdout
    want, got = _losses(straight[p]), _losses(run)
    assert sorted(got) == list(range(1, 9))
    for step in range(5, 9):  # the steps trained after the resume, on q ranks
        assert abs(got[step] - want[step]) <= 1e-10 * abs(want[step]), (step, got, want)
    a, b = ckpt.load(str(run))[0], ckpt.load(str(straight[p]))[0]
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-13, err_msg=k)
