"""The training run's progress, printed by rank 0.

On a terminal: one line, redrawn in place (at most every 0.2 s) and left standing at the end.
Elsewhere (a log file, CI): about ten lines in all, one every ``ceil(steps / 10)`` steps;
``--log-every N`` gives one line every N steps in either case. Each line:

    step   300/1500  loss 1.8123  9,876 tok/s  comm 21%  optim 3%  12.4 s  ETA 0:48

over the steps since the previous line: tok/s = tokens / seconds; comm = time inside
communication calls (MPI's and the hand-written collectives', waiting for other ranks
included; the end-of-run table splits the waiting out) over the step time; optim = the
optimizer step and gradient clipping over the step time. One process shows comm 0%.
"""

from __future__ import annotations

import math
import sys
import time

REDRAW_S = 0.2
LINES = 10


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class TrainProgress:
    """``show(step, rows)`` after each step (rows: metrics.jsonl rows so far)."""

    def __init__(self, total: int, log_every: int | None = None, stream=None):
        self.total, self.stream = total, stream or sys.stdout
        self.tty = log_every is None and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = log_every or max(1, math.ceil(total / LINES))
        self.t0 = self.last_draw = time.perf_counter()
        self.since = 0  # rows already summed into a printed line

    def line(self, step: int, rows: list) -> str:
        recent = rows[self.since:] or rows[-1:]
        secs = max(sum(r["step_s"] for r in recent), 1e-9)
        tokens = sum(r["tokens"] for r in recent)
        comm = sum(r["comm_s"] for r in recent) / secs
        optim = sum(r.get("optim_s", 0.0) for r in recent) / secs
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(step, 1) * (self.total - step)
        return (f"step {step:>5}/{self.total}  loss {rows[-1]['loss']:.4f}  "
                f"{tokens / secs:,.0f} tok/s  comm {100 * comm:.0f}%  optim {100 * optim:.0f}%"
                f"  {elapsed:.1f} s  ETA {_clock(eta)}")

    def show(self, step: int, rows: list) -> None:
        last = step == self.total
        if self.tty:
            now = time.perf_counter()
            if last or now - self.last_draw >= REDRAW_S:
                self.last_draw = now
                text = "\r" + self.line(step, rows[-50:] if not last else rows) + "\033[K"
                self.stream.write(text + ("\n" if last else ""))
                self.stream.flush()
            return
        if step % self.every == 0 or last:
            self.stream.write(self.line(step, rows) + "\n")
            self.stream.flush()
            self.since = len(rows)

    def interrupted(self) -> None:
        """End a line left open on a terminal (a run stopped early)."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
