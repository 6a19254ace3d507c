"""Gradients as flat host buffers: how the syncs (training/sync.py) pack a bucket's arrays
into one buffer for a collective and write the result back.

A bucket is a group of parameters whose gradients travel in one collective; ``make_buckets``
forms them last layer first, so the first bucket is ready first in the backward pass. On a
GPU an array is joined on the device and crosses to the host in one counted, traced copy
(``comm.staged``: a ``d2h`` or ``h2d`` event).
"""

from __future__ import annotations

import contextlib

import numpy as np

from minipar.core import backend
from minipar.core.backend import xp


def flat_size(arrays) -> int:
    return int(sum(a.size for a in arrays))


def pack(arrays, out: np.ndarray, comm=None) -> np.ndarray:
    """Copy arrays (None counts as zeros) one after another into the flat host buffer.

    Arrays on a GPU are first joined on the device, then copied to the host in one piece,
    inside ``comm.staged("d2h", ...)`` so the copy is an event of its own in the trace."""
    if backend.device != "cpu":
        parts = [xp.zeros(n, dtype=out.dtype) if a is None else a.reshape(-1) for a, n in arrays]
        joined = xp.concatenate(parts) if parts else xp.zeros(0, dtype=out.dtype)
        with staged(comm, "d2h", joined.nbytes):
            out[...] = backend.to_numpy(joined)
        return out
    at = 0
    for a, n in arrays:
        if a is None:
            out[at:at + n] = 0
        else:
            out[at:at + n] = backend.to_numpy(a).reshape(-1)
        at += n
    return out


def unpack(flat: np.ndarray, targets, scale: float = 1.0, comm=None) -> None:
    """Write slices of ``flat`` (times ``scale``) back into the target arrays, in place (on a
    GPU: one host-to-device copy, ``comm.staged("h2d", ...)``, then device slices)."""
    source = flat * scale if scale != 1.0 else flat
    if backend.device != "cpu":
        with staged(comm, "h2d", source.nbytes):
            source = backend.from_numpy(source)
    at = 0
    for t in targets:
        n = t.size
        piece = source[at:at + n].reshape(t.shape)
        t[...] = piece if backend.on_device(piece) else backend.from_numpy(piece, dtype=t.dtype)
        at += n


def staged(comm, op: str, nbytes: int):
    return comm.staged(op, nbytes) if comm is not None else contextlib.nullcontext()


def make_buckets(params, bucket_bytes: int) -> list[list[int]]:
    """Group parameter indices into buckets of about ``bucket_bytes``, last parameter first:
    the backward pass finishes the last layers first, so their bucket can leave first."""
    buckets, cur, size = [], [], 0
    for i in reversed(range(len(params))):
        cur.append(i)
        size += params[i].data.nbytes
        if size >= bucket_bytes:
            buckets.append(cur)
            cur, size = [], 0
    if cur:
        buckets.append(cur)
    return buckets
