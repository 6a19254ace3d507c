"""``advise --measure``: run a predicted method for a few steps and read its step time.

Each method is the command a user would type (``minipar.train`` with ``--sync`` and
``--allreduce``, or ``minipar.pipeline``), under ``mpiexec -n p`` with a timeout, in a
scratch run directory. The measured step is the median of ``step_s`` in metrics.jsonl
over the steps after the first three (the first pays one-off costs: allocation, BLAS
start-up, the first messages), or of the pipeline's printed step times after the first.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.core.units import parse_size

SKIP_STEPS = 3


def train_args(method: str, options: dict) -> list[str] | None:
    """The ``minipar.train`` flags of a method's row, or None when train cannot run it."""
    flags = []
    for k, v in options.items():
        if v is None or k == "tie_weights":
            continue
        flags += [f"--{k.replace('_', '-')}", str(v)]
    if options.get("tie_weights"):
        flags.append("--tie-weights")
    if method == "one process":
        return flags
    m = re.fullmatch(r"allreduce (\w+)( \+overlap)?(, (\S+ \w+) buckets)?( \(assumed\))?",
                     method)
    if m:
        return flags + ["--sync", "allreduce", "--allreduce", m.group(1)] + (
            ["--overlap"] if m.group(2) else []) + (
            ["--bucket-kb", str(parse_size(m.group(4)) >> 10)] if m.group(4) else [])
    m = re.fullmatch(r"local SGD k=(\d+) \((\w+)\)", method)
    if m:
        return flags + ["--sync", "average", "--average-every", m.group(1),
                        "--allreduce", m.group(2)]
    if method == "parameter server":
        return flags + ["--sync", "ps"]
    return None


def pipeline_args(method: str, options: dict, cfg: dict) -> list[str] | None:
    m = re.fullmatch(r"(gpipe|1f1b) M=(\d+)", method)
    if not m:
        return None
    args = ["--schedule", m.group(1), "--micro-batches", m.group(2),
            "--layers", str(cfg["layers"]), "--embed", str(cfg["embed"]),
            "--hidden", str(cfg["hidden"]), "--batch", str(cfg["batch_size"]),
            "--seq", str(cfg["seq_len"]), "--dtype", cfg["dtype"]]
    if options.get("data"):
        args += ["--data", options["data"]]
    return args


def _run(p: int, module: str, args: list[str], timeout: float) -> str:
    cmd = [sys.executable, "-m", module, *args]
    if p > 1:
        cmd = [launch.find_mpiexec(), "-n", str(p), *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired:
        raise UserError(f"measuring {module} on {p} ranks took over {timeout:.0f} s: "
                        "use fewer --steps or a smaller model") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{module} on {p} ranks failed: {last}")
    return proc.stdout


def measure(method: str, p: int, options: dict, cfg: dict, steps: int = 30,
            timeout: float = 300) -> float | None:
    """Median seconds per step of ``method`` on p ranks (None: not runnable by minipar)."""
    args = train_args(method, options)
    if args is not None:
        with tempfile.TemporaryDirectory(prefix="minipar-advise-") as out:
            _run(p, "minipar.train", args + ["--steps", str(steps), "--out", out, "--quiet",
                                             "--sample-chars", "0"], timeout)
            with open(os.path.join(out, "metrics.jsonl")) as fh:
                rows = [json.loads(line) for line in fh]
        times = [r["step_s"] for r in rows[SKIP_STEPS:]] or [r["step_s"] for r in rows]
        return statistics.median(times)
    args = pipeline_args(method, options, cfg)
    if args is None:
        return None
    text = _run(p, "minipar.pipeline", args + ["--steps", str(max(steps // 2, 3))], timeout)
    times = [float(t) / 1e3 for t in re.findall(r"^step \d+ .* time ([0-9.]+) ms", text, re.M)]
    return statistics.median(times[1:] or times) if times else None
