"""Planted faults, so the tests can prove that failures end the job the way they should.

The environment variable ``MINIPAR_FAULT`` is read once, when this module is imported::

    MINIPAR_FAULT="raise:rank=1:step=2"              rank 1 raises RuntimeError in step 2
    MINIPAR_FAULT="skip-collective:rank=2:step=3"    rank 2 skips step 3's metrics allreduce
                                                     (planted, every step has one)
    MINIPAR_FAULT="kill:rank=1:step=5"               rank 1 SIGKILLs itself in step 5
    MINIPAR_FAULT="signal:rank=0:step=3:sig=TERM"    rank 0 gets SIGTERM in step 3
    MINIPAR_FAULT="nan:rank=0:step=2"                rank 0's gradients become NaN in step 2

Several faults are separated by ``,``. Unset (the normal case), ``ACTIVE`` is False and the
training step pays exactly one branch (``if faults.ACTIVE:``) per hook. A malformed spec is
a ``ConfigError``: a test that plants a fault must not silently test nothing.
"""

from __future__ import annotations

import os
import signal

from minipar.core.errors import ConfigError

KINDS = ("raise", "skip-collective", "kill", "signal", "nan")


class PlantedFault(RuntimeError):
    """The exception a ``raise`` fault throws (a stand-in for any bug on one rank)."""


def parse(spec: str | None) -> list[dict]:
    """``"kind:key=value:..."`` (comma-separated) -> [{"kind", "rank", "step", ...}]."""
    if not spec:
        return []
    out = []
    for item in spec.split(","):
        kind, *pairs = item.strip().split(":")
        if kind not in KINDS:
            raise ConfigError(f"MINIPAR_FAULT: unknown fault {kind!r}: use one of "
                              f"{', '.join(KINDS)}")
        fault = {"kind": kind, "rank": 0, "step": 1, "sig": "TERM"}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or key not in fault or key == "kind":
                raise ConfigError(f"MINIPAR_FAULT: bad field {pair!r} in {item!r} "
                                  f"(want rank=R, step=S, sig=NAME)")
            try:
                fault[key] = value if key == "sig" else int(value)
            except ValueError:
                raise ConfigError(f"MINIPAR_FAULT: {key} must be an integer in {item!r}") \
                    from None
        out.append(fault)
    return out


try:
    FAULTS, ERROR = parse(os.environ.get("MINIPAR_FAULT")), None
except ConfigError as _exc:  # reported by check(), inside the launcher's error handling
    FAULTS, ERROR = [], _exc
ACTIVE = bool(FAULTS)


def check() -> None:
    """Raise the spec's ConfigError, if it had one (called once, at start-up)."""
    if ERROR is not None:
        raise ERROR


def skips_collectives() -> bool:
    """A ``skip-collective`` fault is planted: the trainer then sums each step's metrics in an
    allreduce of their own (they otherwise ride with the gradients), so there is one to skip."""
    return any(f["kind"] == "skip-collective" for f in FAULTS)


def hit(rank: int, step: int, params=()) -> bool:
    """Act out this rank's faults planted for this step. Called once per step, after the
    backward pass and before the gradient sync; True means "skip the metrics allreduce"."""
    skip = False
    for f in FAULTS:
        if f["rank"] != rank or f["step"] != step:
            continue
        kind = f["kind"]
        if kind == "raise":
            raise PlantedFault(f"planted fault on rank {rank} at step {step}")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "signal":
            os.kill(os.getpid(), getattr(signal, "SIG" + f["sig"]))
        if kind == "nan":
            for p in params:
                if p.grad is not None:
                    p.grad[...] = float("nan")
        if kind == "skip-collective":
            skip = True
    return skip
