"""What a training run leaves behind in its directory, written by rank 0.

    OUT/metrics.jsonl   one JSON object per step: step, epoch, loss, tokens, tokens/s, comm share
    OUT/summary.json    configuration, results, per-rank communication (written atomically)
    OUT/loss.png        training loss (and validation points) against the step
    OUT/trace.json      Chrome trace, OUT/timeline.png (with --trace)
    OUT/checkpoint/     see minipar.training.checkpoint
"""

from __future__ import annotations

import json
import os
import time

from minipar.core.errors import ConfigError
from minipar.training.checkpoint import atomic_write


def choose_run_dir(comm, out: str | None, model: str) -> str:
    """``out`` or ``runs/MODEL-YYYYmmdd-HHMMSS`` chosen by rank 0 and told to every rank."""
    name = out
    if comm.rank == 0 and name is None:
        name = os.path.join("runs", f"{model}-{time.strftime('%Y%m%d-%H%M%S')}")
    if comm.size > 1:
        with comm.phase("run directory"):
            name = comm.bcast_obj(name, 0)
    if comm.rank == 0:
        try:
            os.makedirs(name, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, a read-only disk
            raise ConfigError(f"--out {name}: cannot make the run directory here "
                              f"({exc.strerror or exc})") from None
    return name


class MetricsLog:
    """Appends one line per step to metrics.jsonl (rank 0 only; others hold None)."""

    def __init__(self, run_dir: str | None, append: bool = False):
        self.fh = None
        self.rows: list[dict] = []
        if run_dir is not None:
            self.fh = open(os.path.join(run_dir, "metrics.jsonl"), "a" if append else "w",
                           encoding="utf-8")

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if self.fh is not None:
            self.fh.write(json.dumps(row) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def write_summary(run_dir: str, summary: dict) -> str:
    path = os.path.join(run_dir, "summary.json")
    atomic_write(path, (json.dumps(summary, indent=1, default=_plain) + "\n").encode())
    return path


def _plain(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def plot_loss(run_dir: str, rows: list[dict], evals: list[tuple]) -> str | None:
    """loss.png: training loss per step, validation loss at its steps."""
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1, label="train")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(run_dir, "loss.png")
    fig.savefig(path, dpi=100)
    return path
