"""Batches for the three kinds of model, NumPy only, deterministic.

LM windows (truncated BPTT, the LSTM LM). The stream of T ids is cut into ``batch`` equal
contiguous rows of L = (T - 1) // batch + 1 ids (the last T - 1 - batch (L - 1) ids are
dropped); window i gives

    x = rows[:, i*seq : i*seq + seq],   y = rows[:, i*seq + 1 : i*seq + seq + 1]

so row b of window i+1 continues row b of window i, and the hidden state can be carried
from one window to the next. The last window is shorter when seq does not divide L - 1.

Context windows (the neural N-gram). Every position t of the stream is one example: the
``context`` ids before it (``<s>`` fills in before the start of the stream) and the id at t.
Examples are visited in a seeded permutation that changes with ``set_epoch``.

Classifier batches. Variable-length examples are padded to the longest one of their batch
with ``pad_id``, and their lengths come with them, so the model can ignore the padding.
"""

from __future__ import annotations

import numpy as np

from minipar.core.errors import ConfigError, DataError
from minipar.data.tokenize import BOS, UNK

__all__ = ["LMBatches", "ContextBatches", "ClassifierBatches", "pad_batch"]


def _positive(name, value):
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class LMBatches:
    """(x, y) windows of shape (batch, <= seq) with contiguous streams per row."""

    def __init__(self, ids, batch: int, seq: int, name: str = "data"):
        _positive("--batch", batch)
        _positive("--seq", seq)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        need = batch * seq + 1
        if len(ids) < need:
            raise DataError(f"{name}: {len(ids):,} tokens are too few for --batch {batch} x "
                            f"--seq {seq} (need at least {need:,})")
        L = (len(ids) - 1) // batch + 1
        # Row b is ids[b*(L-1) : b*(L-1) + L]: consecutive rows share one id, so every id
        # but the first is a target exactly once.
        self.rows = np.lib.stride_tricks.sliding_window_view(ids, L)[:: L - 1][:batch].copy()
        self.batch, self.seq, self.length = batch, seq, L

    def __len__(self) -> int:
        return -(-(self.length - 1) // self.seq)

    @property
    def tokens(self) -> int:
        """Number of predicted tokens per pass (batch * (L - 1))."""
        return self.batch * (self.length - 1)

    def __iter__(self):
        for start in range(0, self.length - 1, self.seq):
            stop = min(start + self.seq, self.length - 1)
            yield self.rows[:, start:stop], self.rows[:, start + 1:stop + 1]


class ContextBatches:
    """(x, y): x of shape (B, context) holds the ids before y (shape (B,))."""

    def __init__(self, ids, context: int, batch: int, shuffle: bool = True, seed: int = 0,
                 name: str = "data", pad_id: int = BOS, drop_last: bool = False):
        _positive("--context", context)
        _positive("--batch", batch)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) < batch:
            raise DataError(f"{name}: {len(ids):,} tokens are fewer than one --batch of {batch}")
        padded = np.concatenate([np.full(context, pad_id, dtype=np.int64), ids])
        self.windows = np.lib.stride_tricks.sliding_window_view(padded, context + 1)
        self.context, self.batch, self.shuffle, self.seed = context, batch, shuffle, seed
        self.drop_last, self.epoch = drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        """A different (seeded) order each epoch, the same on every run and every rank."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.windows)
        return n // self.batch if self.drop_last else -(-n // self.batch)

    def order(self) -> np.ndarray:
        n = len(self.windows)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def __iter__(self):
        idx = self.order()
        for b in range(len(self)):
            w = self.windows[idx[b * self.batch:(b + 1) * self.batch]]
            yield w[:, :-1], w[:, -1]


def pad_batch(ids: np.ndarray, offsets: np.ndarray, which: np.ndarray, pad_id: int = UNK):
    """Examples ``which`` of a ragged array (flat ``ids``, example i is
    ids[offsets[i]:offsets[i+1]]) as a padded (B, max_len) matrix and the lengths."""
    starts, lengths = offsets[which], offsets[which + 1] - offsets[which]
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    col = np.arange(width)
    mask = col[None, :] < lengths[:, None]
    src = np.where(mask, starts[:, None] + col[None, :], 0)
    out = np.where(mask, ids[src] if len(ids) else pad_id, pad_id)
    return out.astype(np.int64), lengths.astype(np.int64)


class ClassifierBatches:
    """(ids (B, max_len), lengths (B,), labels (B,)) from a ``classify.Examples`` set."""

    def __init__(self, examples, batch: int, shuffle: bool = True, seed: int = 0,
                 pad_id: int = UNK, name: str = "data"):
        _positive("--batch", batch)
        if len(examples) == 0:
            raise DataError(f"{name}: no examples to batch")
        self.examples, self.batch, self.shuffle = examples, batch, shuffle
        self.seed, self.pad_id, self.epoch = seed, pad_id, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch)

    def __iter__(self):
        n = len(self.examples)
        idx = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
               else np.arange(n))
        ex = self.examples
        for b in range(len(self)):
            which = idx[b * self.batch:(b + 1) * self.batch]
            x, lengths = pad_batch(ex.ids, ex.offsets, which, self.pad_id)
            yield x, lengths, ex.labels[which]
