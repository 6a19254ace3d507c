"""Each step's loss and stop flag ride in the last gradient bucket (one collective fewer a
step) and come out the same as one process's; syncs that cannot carry them sum them alone."""

import json

import numpy as np
import pytest

from mpiutil import run_mpi

BASE = ["-m", "minipar.train", "--dtype", "float64", "--max-chars", "6000", "--steps", "3",
        "--lr", "0.01", "--sample-chars", "0", "--model", "lstm", "--embed", "6", "--hidden",
        "8", "--seq-len", "5", "--batch-size", "7", "--quiet"]


def _losses(out):
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    return np.array([r["loss"] for r in rows if "step_s" in r])


def _metrics_calls(out):
    trace = json.load(open(out / "trace.json"))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return sum(1 for e in events if e.get("ph") == "X" and e.get("pid") == 0
               and (e.get("args") or {}).get("phase") == "metrics")


@pytest.mark.mpi
@pytest.mark.parametrize("sync, calls", [
    ([], 0),                                               # ring: in the last bucket
    (["--overlap", "--bucket-kb", "1", "--layers", "2"], 0),  # on their own, after the buckets
    (["--sync", "ps"], 3),                                 # the trainer's own allreduce
    (["--sync", "average", "--average-every", "2"], 3),
], ids=["ring", "overlap", "ps", "average"])
def test_logged_losses_equal_one_process_wherever_the_metrics_travel(tmp_path, sync, calls):
    run_mpi(1, [*BASE, *sync, "--out", str(tmp_path / "one")], timeout=120)
    run_mpi(3, [*BASE, *sync, "--out", str(tmp_path / "three"), "--trace"], timeout=120)
    one, three = _losses(tmp_path / "one"), _losses(tmp_path / "three")
    assert len(three) == 3
    if "average" not in sync:  # local SGD steps on each rank's own rows: another run
        np.testing.assert_allclose(three, one, rtol=1e-10)
    assert _metrics_calls(tmp_path / "three") == calls
