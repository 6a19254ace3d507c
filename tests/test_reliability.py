"""How errors end a job (minipar/comm/launch.py): once, clearly, on every rank, never a hang.

The drivers below call ``launch.run`` with a small ``main`` under mpiexec, so each rule is
checked on its own: an agreed user error, user errors raised outside ``agree`` on every
rank or on one, an error every rank raises at once, and the stall census.
"""

from __future__ import annotations

import time

import pytest

from minipar.training import faults
from minipar.comm import launch
from minipar.core.errors import ConfigError
from mpiutil import run_mpi

DRIVER = """
import sys
from minipar.comm import launch
from minipar.core.errors import ConfigError
from minipar.comm.communicator import init
from minipar.training.sync import ReplicaDrift

def main(argv, state):
    comm = state["comm"] = init()
    r = comm.rank
    case = argv[0]
    if case == "agree":
        def load():
            if r == 2:
                raise ConfigError("rank two cannot read its file")
            return 1
        launch.agree(comm, load)
    if case == "everyone":
        raise ConfigError("every rank finds this")
    if case == "one":
        if r == 1:
            raise ConfigError("only rank one finds this")
        comm.barrier()
    if case == "drift":
        raise ReplicaDrift("replicas drifted apart at step 9: ranks [0, 1] hold 1; ranks [2]")
    return 0

sys.exit(launch.run(main, sys.argv[1:]))
"""


def _launch(n, case, timeout=30):
    t0 = time.monotonic()
    proc = run_mpi(n, ["-c", DRIVER, case], timeout=timeout, check=False)
    return proc, time.monotonic() - t0


def _ours(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("minipar")]


@pytest.mark.mpi
def test_agreed_user_error_is_one_line_from_rank_zero():
    proc, took = _launch(3, "agree")
    assert proc.returncode == 2 and took < 30
    assert proc.stderr.strip() == ("minipar: error: rank two cannot read its file "
                                   "(on rank 2)")


@pytest.mark.mpi
def test_user_error_raised_by_every_rank_outside_agree_is_one_line():
    proc, took = _launch(3, "everyone")
    assert proc.returncode == 2 and took < 30
    assert proc.stderr.strip() == "minipar: error: every rank finds this"


@pytest.mark.mpi
def test_user_error_on_one_rank_alone_ends_the_job():
    proc, took = _launch(3, "one")
    assert proc.returncode != 0 and took < 30
    assert _ours(proc) == ["minipar: error: only rank one finds this (on rank 1)"]


@pytest.mark.mpi
def test_error_raised_everywhere_at_once_is_printed_once():
    proc, took = _launch(3, "drift")
    assert proc.returncode == 1 and took < 30
    assert _ours(proc) == ["minipar: rank 0: ReplicaDrift: replicas drifted apart at step 9: "
                           "ranks [0, 1] hold 1; ranks [2] (at <string>:25 in main)"]


def test_fault_specs_parse_or_fail_clearly():
    assert faults.parse("raise:rank=1:step=2, kill:step=4") == [
        {"kind": "raise", "rank": 1, "step": 2, "sig": "TERM"},
        {"kind": "kill", "rank": 0, "step": 4, "sig": "TERM"}]
    assert faults.parse("") == [] and faults.parse(None) == []
    for bad, why in (("boom", "unknown fault"), ("raise:rank", "bad field"),
                     ("raise:when=3", "bad field"), ("raise:step=x", "must be an integer")):
        with pytest.raises(ConfigError, match=why):
            faults.parse(bad)
    assert not faults.ACTIVE  # unset in the test environment: the hook is one false branch


def test_stall_description_names_who_is_elsewhere_and_who_is_silent():
    wait = {"what": "mpi allreduce", "who": "all ranks", "step": "3", "phase": "metrics"}
    ring = {"what": "sendrecv inside ring allreduce", "who": "r3,r1", "step": "4",
            "phase": "sync"}
    line = launch.describe_stall({0: wait, 1: wait, 2: ring}, [3], 1.0)
    assert line == ("minipar: stall: r0,r1 wait in mpi allreduce (step 3, metrics); r2 never "
                    "arrived there: waits in sendrecv inside ring allreduce with r3,r1 "
                    "(step 4, sync); r3 did not answer within 1 s (dead, or busy outside "
                    "communication)")


def test_one_process_errors_return_two_without_mpi(tmp_path, capsys):
    from minipar import train
    assert train.main(["--steps", "0"]) == 2
    assert capsys.readouterr().err == "minipar: error: --steps must be positive, got 0\n"


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_a_reader_that_goes_away_ends_the_run_quietly(ranks):
    """``minipar.train | head -1``: no error line, no traceback, status 141 (as for SIGPIPE),
    and under mpiexec no rank left waiting."""
    import subprocess
    import sys

    from mpiutil import ROOT, mpiexec

    cmd = [sys.executable, "-m", "minipar.train", "--steps", "400", "--max-chars", "5000",
           "--log-every", "1"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().startswith(b"minipar: ")
    proc.stdout.close()  # the reader leaves while the run still prints
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    # mpiexec forwards the output itself, so SIGPIPE may end it first: the shell's 141 too
    assert proc.returncode in (launch.EXIT_PIPE, -13), err.decode()
    assert b"Traceback" not in err and b"minipar: " not in err, err.decode()
