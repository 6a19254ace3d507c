"""Grading a whole class: one submission per folder, several at a time, a bounded number.

    python -m minipar.check ring_allreduce ring_allreduce:allreduce --submissions subs/ --jobs 2

Each folder of ``subs/`` is graded in its own process (``python -m minipar.check TASK TARGET
--json`` with that folder as the current directory, so ``module:function`` is found there),
at most ``jobs`` at a time; the report is written into the folder as ``grade-TASK.json``,
and one line per folder is printed, in folder order. A collective task starts up to
max(--ranks) MPI processes per job, so ``jobs`` x max(ranks) processes run at once: the
default, ``max(1, cores // max(ranks))``, keeps that within the machine's cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minipar.core.errors import UserError


def default_jobs(ranks) -> int:
    return max(1, (os.cpu_count() or 1) // max(ranks, default=1))


def _grade_one(folder: Path, args: list[str], wall: float) -> tuple[Path, dict | None, str]:
    """(folder, its report or None, a line of trouble)."""
    cmd = [sys.executable, "-m", "minipar.check", *args, "--json"]
    try:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=wall)
    except subprocess.TimeoutExpired:
        return folder, None, f"grading took longer than {wall:.0f} s and was stopped"
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return folder, None, lines[-1] if lines else f"exit status {proc.returncode}"
    (folder / f"grade-{args[0]}.json").write_text(json.dumps(report, indent=1))
    return folder, report, ""


def grade_class(root, task: str, target: str, extra: list[str], jobs: int,
                wall: float) -> list[tuple[Path, dict | None, str]]:
    """Grade every folder under ``root`` (see the module docstring); results in folder order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--submissions {root}: no such folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(f"--submissions {root}: no submission folders in it")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda f: _grade_one(f, [task, target, *extra], wall), folders))


def summary(results) -> str:
    lines = []
    for folder, report, trouble in results:
        if report is None:
            lines.append(f"{folder.name:<24} error: {trouble}")
        else:
            lines.append(f"{folder.name:<24} {100 * report['score']:5.1f}%  "
                         f"{report['passed']}/{report['total']} checks"
                         + ("" if report["ok"] else "  (see grade file)"))
    return "\n".join(lines)
