"""Sizes in bytes, read and written the way people write them (binary units)."""

from __future__ import annotations

from minipar.core.errors import UserError

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``8``, ``64K``, ``16M``, ``1G``, ``16MiB``, ``4KB``: bytes (K = 1024; a trailing ``B``
    or ``iB`` is allowed). Raises UserError for anything else, or for a size that is not
    positive."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    try:
        n = int(float(t[:-1]) * UNITS[t[-1]]) if t and t[-1] in UNITS else int(t)
    except ValueError:
        raise UserError(f"bad size {text!r}: use bytes, or 64K, 16M, 1G") from None
    if n <= 0:
        raise UserError(f"bad size {text!r}: must be positive")
    return n


def format_bytes(n: float, spec: str = ".1f") -> str:
    """``8 B``, ``64.0 KiB``, ``16.0 MiB``, ``1.0 GiB``; ``spec`` formats the number
    (``"g"`` gives ``64 KiB``, ``".4g"`` ``1.5 MiB``)."""
    for unit in ("GiB", "MiB", "KiB"):
        f = UNITS[unit[0]]
        if abs(n) >= f:
            return f"{n / f:{spec}} {unit}"
    return f"{n:g} B"
