"""Deterministic data sharding across ranks, uneven data included.

Every rank calls the same function with the same arguments and gets its own slice: no
message is needed, because the split is a pure function of (n, size, mode, policy, seed,
epoch). A shard is a list of unit indices: rows of a language-model stream, or examples.

Modes (which units go where):
    contiguous   rank r takes one block: units [start_r, start_r + n_r)
    strided      rank r takes units r, r + p, r + 2p, ...
    balanced     units have sizes (``weights``); a static plan evens out the total size per
                 rank: longest-processing-time first by default (minipar.planning.plan),
                 or any ``scheduler(sizes, p)`` (``--scheduler module:function``)
    weighted     rank r takes a contiguous block of about n * w_r / sum(w) units: a chosen skew,
                 to study uneven data on purpose

Policies (what to do when n is not a multiple of p, or blocks differ):
    uneven       keep every unit once; ranks differ in size. Training weights every average by
                 the number of tokens, and a rank that has run out joins each collective with a
                 zero contribution, so the result is exactly the one-process result.
    drop         cut every shard to the smallest one (units are lost).
    pad          extend every shard to the largest one by repeating its own first units
                 (units are seen twice; a rank with none repeats the first units overall).

``set_epoch(e)`` reshuffles (when ``shuffle``) with seed + e, identically on every rank, like
PyTorch's DistributedSampler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from minipar.core.errors import ConfigError
from minipar.planning.policies import balanced_shards

MODES = ("contiguous", "strided", "balanced", "weighted")
POLICIES = ("uneven", "drop", "pad")


def block_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of p near-equal contiguous blocks: the first n mod p get one more."""
    base, extra = divmod(n, size)
    bounds, start = [], 0
    for r in range(size):
        stop = start + base + (1 if r < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def weighted_bounds(n: int, weights) -> list[tuple[int, int]]:
    """Contiguous blocks with sizes proportional to ``weights`` (largest-remainder rounding)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"shard weights must be non-negative with a positive sum, got {weights}")
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    stops = np.cumsum(counts)
    return [(int(s - c), int(s)) for s, c in zip(stops, counts)]


@dataclass
class Sharder:
    """The split of ``n`` units over ``size`` ranks; see the module docstring."""

    n: int
    size: int
    mode: str = "contiguous"
    policy: str = "uneven"
    shuffle: bool = False
    seed: int = 0
    # "balanced": the units' sizes; "weighted": the ranks' shares
    weights: Sequence[float] | np.ndarray | None = None
    epoch: int = 0
    # "balanced": plan(sizes, p) -> unit indices per rank (LPT when None)
    scheduler: Callable[[list, int], list[list[int]]] | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"unknown shard mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown shard policy {self.policy!r}: "
                              f"use one of {', '.join(POLICIES)}")
        if self.size < 1:
            raise ConfigError("the number of ranks must be at least 1")
        if self.mode in ("balanced", "weighted") and self.weights is None:
            raise ConfigError(f"shard mode {self.mode!r} needs weights")
        if self.mode == "weighted" and len(self.weights) != self.size:
            raise ConfigError(f"{len(self.weights)} shard weights given for {self.size} ranks")
        if self.mode == "balanced" and len(self.weights) != self.n:
            raise ConfigError(f"{len(self.weights)} unit sizes given for {self.n} units")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng((self.seed, self.epoch)).permutation(self.n)

    def all_shards(self) -> list[np.ndarray]:
        """Every rank's unit indices (every rank can compute every shard)."""
        order = self._order()
        p = self.size
        if self.mode == "contiguous":
            shards = [order[a:b] for a, b in block_bounds(self.n, p)]
        elif self.mode == "strided":
            shards = [order[r::p] for r in range(p)]
        elif self.mode == "weighted":
            shards = [order[a:b] for a, b in weighted_bounds(self.n, self.weights)]
        else:

            sizes = np.asarray(self.weights, dtype=np.float64)[order]
            plan = (self.scheduler or balanced_shards)(sizes, p)
            shards = [order[np.asarray(s, dtype=np.int64)] for s in plan]
        return self._apply_policy([np.asarray(s, dtype=np.int64) for s in shards], order)

    def _apply_policy(self, shards, order):
        lengths = [len(s) for s in shards]
        if self.policy == "drop":
            m = min(lengths)
            return [s[:m] for s in shards]
        if self.policy == "pad":
            m = max(lengths)
            # np.resize repeats cyclically; a rank with no units at all borrows from the start
            return [np.resize(s if len(s) else order, m) for s in shards]
        return shards

    def shard(self, rank: int) -> np.ndarray:
        """This rank's unit indices."""
        return self.all_shards()[rank]

    def imbalance(self, sizes=None) -> dict:
        """Largest and smallest shard (in units, or in ``sizes`` summed), and their ratio."""
        totals = [float(len(s)) if sizes is None else float(np.sum(np.asarray(sizes)[s]))
                  for s in self.all_shards()]
        lo, hi = min(totals), max(totals)
        return {"smallest": lo, "largest": hi, "ratio": (hi / lo) if lo > 0 else float("inf")}


def local_batches(shard: np.ndarray, batch_size: int, steps: int):
    """Split a shard into ``steps`` consecutive local batches of ``batch_size`` units. When
    the shard runs out, the remaining batches are empty: the rank still takes part in every
    step (with zero contribution), so no collective is left waiting for it."""
    for s in range(steps):
        yield shard[s * batch_size:(s + 1) * batch_size]
