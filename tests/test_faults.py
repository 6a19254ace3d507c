"""Planted faults (``MINIPAR_FAULT``, see minipar/training/faults.py) and real signals, under
mpiexec.

- an exception on one rank ends the whole job with one line naming rank, error and place;
- one rank skipping a collective is caught by the stall watchdog (within the timeout plus a
  few seconds, naming the rank that never arrived) and by the desync guard;
- a rank killed with SIGKILL ends the job; the last checkpoint is intact and resuming it
  reaches the uninterrupted run's final parameters exactly (float64, same ranks);
- SIGTERM/SIGINT stop every rank cleanly with a checkpoint; non-finite gradients stop the
  run at their step and keep the last good checkpoint; resuming on more ranks works with
  ``--sync allreduce`` and is refused otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minipar.training import checkpoint as ckpt
from mpiutil import ROOT, mpiexec, run_mpi

LSTM = ["--max-chars", "3000", "--hidden", "8", "--embed", "4", "--seq-len", "5",
        "--batch-size", "4", "--sample-chars", "0", "--quiet", "--dtype", "float64",
        "--dropout", "0.2", "--steps", "8"]
MLP = ["--model", "mlp", "--max-chars", "3000", "--hidden", "8", "--embed", "4",
       "--context", "3", "--batch-size", "6", "--sample-chars", "0", "--quiet",
       "--dtype", "float64"]


def train(n, args, out, fault=None, timeout=30, check=True):
    env = {"MINIPAR_FAULT": fault} if fault else None
    t0 = time.monotonic()
    proc = run_mpi(n, ["-m", "minipar.train", *args, "--out", str(out)], timeout=timeout,
                   env=env, check=check)
    proc.took = time.monotonic() - t0
    return proc


def resume(n, run_dir, *more, check=True):
    return run_mpi(n, ["-m", "minipar.train", "--resume", str(run_dir), "--quiet", *more],
                   timeout=30, check=check)


def params(run_dir):
    return ckpt.load(str(run_dir))[0]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k}: max difference {np.abs(a[k] - b[k]).max()}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs (LSTM, float64, dropout so RNG states matter, 2 ranks), one per
    --sync strategy, made when first asked for."""
    done = {}

    def get(sync="allreduce"):
        if sync not in done:
            out = tmp_path_factory.mktemp("ref") / sync
            train(2, LSTM + ["--sync", sync, "--average-every", "3"], out)
            done[sync] = params(out)
        return done[sync]
    return get


@pytest.mark.mpi
def test_exception_on_one_rank_ends_every_rank(tmp_path):
    proc = train(4, LSTM, tmp_path / "r", fault="raise:rank=1:step=2", check=False)
    assert proc.returncode != 0 and proc.took < 30
    ours = [line for line in proc.stderr.splitlines() if line.startswith("minipar")]
    assert ours == [ours[0]] and ours[0].startswith(
        "minipar: rank 1: PlantedFault: planted fault on rank 1 at step 2 (at faults.py:")
    assert "Traceback" not in proc.stderr


@pytest.mark.mpi
def test_watchdog_names_the_rank_that_never_arrived(tmp_path):
    timeout = 3
    proc = train(4, LSTM + ["--comm-timeout", str(timeout)], tmp_path / "r",
                 fault="skip-collective:rank=2:step=3", check=False)
    assert proc.returncode != 0
    assert proc.took < timeout + 10, f"took {proc.took:.1f} s"
    err = proc.stderr
    assert "CommTimeout: mpi allreduce with all ranks on world (tag -1, step 3, phase metrics) " \
           f"did not finish within {float(timeout)} s" in err
    assert "minipar: stall: r0,r1,r3 wait in mpi allreduce (step 3, metrics); r2 never " \
           "arrived there" in err, err
    assert "Traceback" not in err


@pytest.mark.mpi
def test_desync_guard_names_the_calls_that_differ(tmp_path):
    proc = train(4, LSTM + ["--check-collectives"], tmp_path / "r",
                 fault="skip-collective:rank=2:step=3", check=False)
    assert proc.returncode != 0 and proc.took < 30
    ours = [line for line in proc.stderr.splitlines() if line.startswith("minipar")]
    assert len(ours) == 1, proc.stderr
    assert "CollectiveMismatch: collective mismatch on world: r0,r1,r3 called allreduce(mpi, " \
           "n=3, float64)" in ours[0]
    assert "r2 called allreduce(ring, " in ours[0]


@pytest.mark.mpi
def test_sigkill_one_rank_then_resume_exactly(tmp_path, reference):
    out = tmp_path / "r"
    proc = train(2, LSTM + ["--checkpoint-every", "2"], out, fault="kill:rank=1:step=5",
                 check=False)
    assert proc.returncode != 0 and proc.took < 30
    saved, _, meta, _ = ckpt.load(str(out))  # intact: every checksum verified
    assert meta["step"] in (2, 4)  # 4 unless the kill came while rank 0 was writing it
    assert all(np.isfinite(a).all() for a in saved.values())
    resume(2, out)
    assert_same(params(out), reference())
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in open(out / "metrics.jsonl")]
    assert steps == list(range(1, 9))  # rows of the lost steps were not kept twice


@pytest.mark.mpi
@pytest.mark.parametrize("sync", ["allreduce", "average", "ps"])
def test_sigterm_fault_stops_cleanly_then_resume_exactly(tmp_path, reference, sync):
    out = tmp_path / "r"
    args = LSTM + ["--sync", sync, "--average-every", "3"]  # step 4 is between averages
    proc = train(2, args, out, fault="signal:rank=1:step=4:sig=TERM", check=False)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert f"stopped by SIGTERM at step 4; checkpoint {out}/checkpoint/step-00000004" \
           in proc.stdout
    assert ckpt.load(str(out))[2]["step"] == 4
    resume(2, out)
    assert_same(params(out), reference(sync))


@pytest.mark.mpi
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_mpiexec_stops_every_rank_with_a_checkpoint(tmp_path, sig):
    out = tmp_path / "r"
    args = LSTM[:-1] + ["100000", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([mpiexec(), "-n", "4", sys.executable, "-m", "minipar.train",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").stat().st_size:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, stdout + stderr
    assert f"stopped by {sig.name} at step" in stdout
    meta = ckpt.load(str(out))[2]
    assert f"at step {meta['step']};" in stdout


@pytest.mark.mpi
def test_divergence_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "r"
    proc = train(2, LSTM + ["--checkpoint-every", "1"], out, fault="nan:rank=0:step=3",
                 check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"minipar: error: the gradients diverged at step 3 (loss {_loss(proc)} per term); "
        f"lower --lr (now 0.02); the last good checkpoint is kept in {out}"]
    saved, _, meta, _ = ckpt.load(str(out))
    assert meta["step"] == 2 and all(np.isfinite(a).all() for a in saved.values())


def _loss(proc) -> str:
    return proc.stderr.split("(loss ")[1].split(" per term")[0]


@pytest.mark.mpi
def test_resume_on_more_ranks_with_allreduce(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "r"
    train(2, MLP + ["--steps", "6"], ref)
    train(2, MLP + ["--steps", "3"], out)
    refused = resume(3, out, "--steps", "6", "--sync", "ps", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith("written by 2 ranks; resuming on 3 ranks works "
                                           "only with --sync allreduce")
    proc = resume(3, out, "--steps", "6", "--no-quiet")
    assert "note: resumed on 3 ranks from 2: rows are shared out anew" in proc.stdout
    want, got = params(ref), params(out)
    for k in want:  # the same sums, added in another order
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-13)
