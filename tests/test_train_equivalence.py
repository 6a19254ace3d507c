"""K ranks with gradient allreduce equal one process on the same global batch (float64).

For every allreduce algorithm, with and without overlap (buckets that leave during the
backward pass), and every shard policy, uneven data included (a rank with half the rows of
another), the final parameters after a few Adam steps match the one-process run
to 1e-10 relative. One mpiexec launch per K runs all configurations of that K.
"""

import json

import numpy as np
import pytest

from mpiutil import ROOT, run_mpi

DRIVER = str(ROOT / "tests" / "drivers" / "train_runs.py")
BASE = ["--dtype", "float64", "--max-chars", "6000", "--steps", "3", "--lr", "0.01",
        "--sample-chars", "0", "--comm-timeout", "60"]
LSTM = ["--model", "lstm", "--embed", "6", "--hidden", "8", "--seq-len", "5", "--batch-size", "6"]
CLF = ["--model", "classifier", "--embed", "4", "--hidden", "6", "--batch-size", "9"]
MLP = ["--model", "mlp", "--embed", "4", "--hidden", "8", "--context", "3", "--batch-size", "7"]


def configs(k):
    runs = [LSTM + ["--allreduce", a] for a in ("mpi", "ring", "tree", "rd", "naive", "shm")]
    runs += [MLP + ["--allreduce", "ring", "--shard", s, "--shard-policy", p]
             for s, p in (("contiguous", "uneven"), ("strided", "drop"), ("contiguous", "pad"))]
    runs += [LSTM + ["--shard", "weighted", "--shard-weights", ",".join(["2"] + ["1"] * (k - 1)),
                     "--allreduce", "rd"]]  # rank 0 holds twice the rows of the others
    runs += [MLP + ["--sync", "ps"]]
    runs += [CLF + ["--shard", "balanced"]]  # rows padded per rank: the padded scheduler
    runs += [MLP + ["--allreduce", "shm", "--shard", "contiguous", "--shard-policy", "uneven"]]
    # overlap: small buckets, so several leave during backward and queue behind each other
    runs += [LSTM + ["--layers", "2", "--overlap", "--allreduce", a, "--bucket-kb", "1"]
             for a in ("mpi", "ring", "tree", "rd", "naive")]
    runs += [MLP + ["--overlap", "--allreduce", "ring", "--bucket-kb", "1"]]
    return [BASE + r for r in runs]


def _run(tmp, n, ref, runs):
    run_mpi(n, [DRIVER, str(tmp), str(ref), json.dumps(runs)], timeout=240)
    return [dict(np.load(tmp / f"params{i}.npz")) for i in range(len(runs))]


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_k_ranks_equal_one_process(tmp_path, k):
    runs = configs(k)
    (tmp_path / "par").mkdir()
    (tmp_path / "ref").mkdir()
    got = _run(tmp_path / "par", k, 0, runs)
    want = _run(tmp_path / "ref", 1, k, runs)
    for argv, g, w in zip(runs, got, want):
        for name in w:
            scale = max(np.abs(w[name]).max(), 1e-300)
            err = np.abs(g[name] - w[name]).max() / scale
            assert err < 1e-10, f"{' '.join(argv)}: {name} differs by {err:.2e} relative"
