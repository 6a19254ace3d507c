"""Run a Python snippet or module under ``mpiexec -n K`` from pytest, always with a timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mpiexec() -> str:
    """The ``mpiexec`` next to this Python (the mpich wheel), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if not found:
        raise RuntimeError("mpiexec not found: pip install mpich")
    return found


def run_mpi(n: int, args: list[str], timeout: float = 60, env: dict | None = None,
            cwd: str | os.PathLike | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS``; returns the completed process (text output).

    ``check`` raises with both output streams when the exit status is non-zero.
    A run past ``timeout`` seconds raises ``subprocess.TimeoutExpired`` (a hang is a failure).
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        full_env.update(env)
    cmd = [mpiexec(), "-n", str(n), sys.executable, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd or ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def run_code(n: int, code: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a code string on n ranks (``python -c code``)."""
    return run_mpi(n, ["-c", code], timeout=timeout, **kw)
