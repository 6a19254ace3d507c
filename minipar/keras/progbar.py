"""The progress display Keras users know, printed by rank 0 only.

    Epoch 3/10
    75/75 ━━━━━━━━━━━━━━━━━━━━ 1s 6ms/step - accuracy: 0.8763 - loss: 0.3148 - val_accuracy: ...

verbose=1 on a terminal: the line is redrawn in place (carriage return) as steps finish, at
most every 0.1 s. verbose=1 when the output is not a terminal (a log file, CI), and
verbose=2: one line per epoch, written when the epoch ends, no carriage returns. verbose=0:
nothing. Under mpiexec the line ends with ``- comm: N%``, the share of the epoch spent
inside communication calls (waiting for other ranks included).
"""

from __future__ import annotations

import sys
import time

BAR = 20
REDRAW_S = 0.1


def resolve(verbose) -> int:
    """'auto' -> 1; 1 stays 1; 2 -> 2; 0 -> 0 (other values are refused by fit)."""
    return 1 if verbose == "auto" else int(verbose)


def format_logs(logs: dict) -> str:
    """``accuracy: 0.8763 - loss: 0.3148 - val_...``: Keras' order (alphabetical)."""
    return " - ".join(f"{k}: {v:.4f}" for k, v in sorted(logs.items()))


def _time(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1e3:.0f}ms"


def _per_step(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}ms/step" if seconds < 1 else f"{seconds:.1f}s/step"


class Progress:
    """One epoch's line: ``update(step, logs)`` while it runs, ``end(logs)`` at its end."""

    def __init__(self, steps: int, verbose: int, show: bool, stream=None):
        self.steps, self.verbose, self.show = steps, verbose, show and verbose > 0
        self.stream = stream or sys.stdout
        self.tty = verbose == 1 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = self.last = time.perf_counter()

    def begin(self, epoch: int, epochs: int) -> None:
        if self.show:
            self.stream.write(f"Epoch {epoch + 1}/{epochs}\n")
            self.stream.flush()
        self.t0 = self.last = time.perf_counter()

    def line(self, step: int, logs: dict, comm_share: float | None) -> str:
        done = round(BAR * step / max(self.steps, 1))
        elapsed = time.perf_counter() - self.t0
        parts = [f"{step}/{self.steps} {'━' * done}{' ' * (BAR - done)} {_time(elapsed)} "
                 f"{_per_step(elapsed / max(step, 1))}"]
        if logs:
            parts.append(format_logs(logs))
        if comm_share is not None:
            parts.append(f"comm: {100 * comm_share:.0f}%")
        return " - ".join(parts)

    def update(self, step: int, logs: dict, comm_share: float | None = None) -> None:
        now = time.perf_counter()
        if not (self.show and self.tty) or now - self.last < REDRAW_S:
            return
        self.last = now
        self.stream.write("\r" + self.line(step, logs, comm_share) + "\033[K")
        self.stream.flush()

    def end(self, logs: dict, comm_share: float | None = None) -> None:
        if not self.show:
            return
        text = self.line(self.steps, logs, comm_share)
        self.stream.write(("\r" + text + "\033[K\n") if self.tty else text + "\n")
        self.stream.flush()
