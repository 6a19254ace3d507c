"""Concatenating many slices of one array with array operations (no Python loop per slice).

Used to assemble text from pieces: ARPA lines from token names and formatted numbers, and
the distinct words of a text from their spans.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ragged_gather"]


_BLOCK = 1 << 18  # output bytes per pass: its index array (8 B a byte) stays small, in the cache


def ragged_gather(src: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """src[start_0 : start_0 + len_0] + src[start_1 : ...] + ... (every length >= 1).

    The index of each output byte is one more than the one before, except at the first byte
    of a piece, where it jumps to that piece's start: a cumulative sum of ones and jumps.
    Long outputs are made a block of about ``_BLOCK`` bytes (whole pieces) at a time."""
    ends = np.cumsum(length)
    total = int(ends[-1]) if len(ends) else 0
    out = np.empty(total, dtype=src.dtype)
    if total <= _BLOCK:
        _gather(src, start, length, out)
        return out
    cuts = np.searchsorted(ends, np.arange(_BLOCK, total, _BLOCK), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(ends)]]))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        lo = int(ends[a - 1]) if a else 0
        _gather(src, start[a:b], length[a:b], out[lo:int(ends[b - 1])])
    return out


def _gather(src, start, length, out) -> None:
    if len(out) == 0:
        return
    # np.intp: take converts any other index type to it first, a copy as long as the output;
    # mode="clip" skips the bounds check of every index, which are in range by construction
    step = np.ones(len(out), dtype=np.intp)
    step[0] = start[0]
    ends = np.cumsum(length)
    step[ends[:-1]] = start[1:] - (start[:-1] + length[:-1] - 1)
    np.take(src, np.cumsum(step, out=step), out=out, mode="clip")
