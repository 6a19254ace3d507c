"""Counts sent to the rank that owns them, a round of sentences at a time (docs/ngram.md).

Ownership. Word ids are cut into P ranges (``choose_cuts``); a gram of order k >= 2 belongs
to the rank whose range holds its first word.

Rounds. A rank does not count its whole shard at once: ``split_sentences`` cuts it into
pieces of about ``chunk_tokens`` tokens (whole sentences), and every rank takes part in as
many rounds as the rank with the most pieces (the others send nothing in their last ones).
A round counts one piece (``count_ngrams``), sends its grams to their owners
(``shuffle_round``) and adds what this rank receives to the counts it owns
(``OwnedCounts``). Counting holds several arrays as long as its piece for a moment (int64
keys and permutations, int32 positions and ranks), so the piece size, not the shard, bounds
that peak; what stays is 16 bytes per distinct owned gram. Counts are sums, so the owned
counts are the same integers for any cut into rounds, and everything estimated from them
is the same to the bit.

Merging a round. Order k is kept as sorted int64 keys ``parent * V + word`` (parent: the
row of the gram's prefix in order k-1; for k = 2 the first word) and their counts. The
round's distinct keys are looked up in the kept ones with one binary search: equal keys add
their counts, new ones are inserted (``np.insert``). Rows of order k-1 move forward when
new rows are inserted before them, but keep their order, so the parents of order k are
renumbered by that move (``moved``) and the keys stay sorted.
"""

from __future__ import annotations

import numpy as np

from minipar.models.ngram_counts import row_numbers, unique_inverse

__all__ = ["choose_cuts", "range_owner", "alltoallv_rows", "block_positions", "OwnedCounts",
           "shuffle_round", "merge_sorted", "pack_rows"]


def choose_cuts(comm, local, V: int) -> np.ndarray:
    """cuts (P + 1 ids, cuts[0] = 0, cuts[P] = V): rank r owns first words cuts[r] ..
    cuts[r+1]-1, chosen so that each range starts about 1/P of the distinct local grams
    (of the first round's pieces, which stand for the rest)."""
    w = np.zeros(V, dtype=np.int64)
    for rows in local.grams[1:]:
        w += np.bincount(rows[:, 0], minlength=V)
    with comm.phase("choose ranges"):
        comm.allreduce(w)
    cum = np.cumsum(w)
    share = cum[-1] * np.arange(1, comm.size) / comm.size
    return np.concatenate([[0], np.searchsorted(cum, share, side="right"), [V]]).astype(np.int64)


def range_owner(first_words: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts[1:-1], first_words, side="right").astype(np.int64)


def block_positions(dest: np.ndarray, P: int):
    """(send order, counts per rank, position of each item within its rank's block)."""
    order = np.argsort(dest, kind="stable")
    send_n = np.bincount(dest, minlength=P).astype(np.int64)
    pos = np.empty(len(dest), dtype=np.int64)
    pos[order] = np.arange(len(dest)) - np.repeat(np.cumsum(send_n) - send_n, send_n)
    return order, send_n, pos


def alltoallv_rows(comm, send, send_n, recv_n, width: int, dtype):
    """Rows of ``width`` values, ``send_n[r]`` of them to rank r; the rows received."""
    got = np.empty((int(recv_n.sum()), width), dtype=dtype)
    comm.alltoallv(np.ascontiguousarray(send).reshape(-1), send_n * width, got.reshape(-1),
                   recv_n * width)
    return got


def pack_rows(order: np.ndarray, *columns) -> np.ndarray:
    """(n, len(columns)) int64 rows, row i made of each column's item ``order[i]``: the
    send buffer filled in send order, with no unordered copy first."""
    out = np.empty((len(order), len(columns)), dtype=np.int64)
    for j, col in enumerate(columns):
        out[:, j] = col[order]  # one column's copy at a time
    return out


def merge_sorted(a_keys, a_counts, b_keys, b_counts):
    """The union of two sorted arrays of distinct keys, counts of equal keys added (into
    ``a_counts``, which is updated in place):
    (keys, counts, moved, placed), where a's row i is now row moved[i] and b's row j is
    row placed[j]. A new key inserted before a's row i moves that row forward by one, so
    moved[i] = i + #(insertion points <= i); the j-th new key lands at its point + j."""
    if len(a_keys) == 0:
        return b_keys, b_counts, np.zeros(0, np.int64), np.arange(len(b_keys), dtype=np.int64)
    at = np.searchsorted(a_keys, b_keys)
    hit = at < len(a_keys)
    hit[hit] = a_keys[at[hit]] == b_keys[hit]
    a_counts[at[hit]] += b_counts[hit]  # b's keys are distinct: no index repeats
    miss = np.flatnonzero(~hit)
    ins = at[miss]
    keys = np.insert(a_keys, ins, b_keys[miss])
    counts = np.insert(a_counts, ins, b_counts[miss])
    rows = np.arange(len(a_keys), dtype=np.int64)
    moved = rows + np.searchsorted(ins, rows, side="right")
    placed = np.empty(len(b_keys), dtype=np.int64)
    placed[hit] = moved[at[hit]]
    placed[miss] = ins + np.arange(len(ins))
    return keys, counts, moved, placed


class OwnedCounts:
    """The counts of the grams of orders 2..N this rank owns, added up round by round."""

    def __init__(self, V: int, order: int):
        self.V, self.order = V, order
        self.keys = {k: np.zeros(0, np.int64) for k in range(2, order + 1)}
        self.counts = {k: np.zeros(0, np.int64) for k in range(2, order + 1)}
        self.moved = self.placed = None  # of the order merged last, in this round

    def add(self, k: int, keys: np.ndarray, counts: np.ndarray) -> None:
        """Merge a round's distinct k-gram keys (sorted, their parents already this table's
        rows of order k-1 after the round's merge of k-1: ``placed``)."""
        old = self.keys[k]
        if k > 2 and len(old) and len(self.moved):  # the parents' rows moved forward
            V = self.V
            old = self.moved[old // V] * V + old % V
        self.keys[k], self.counts[k], self.moved, self.placed = merge_sorted(
            old, self.counts[k], keys, counts)

    def tables(self) -> list:
        """Per order k = 2..N: (rows (m, k) int32, counts int64, parent rows: int32 when
        they fit)."""
        out, prev = [], None
        for k in range(2, self.order + 1):
            keys = self.keys.pop(k)
            par = keys // self.V
            par = row_numbers(par, self.V if k == 2 else len(prev))
            rows = np.empty((len(keys), k), dtype=np.int32)
            rows[:, :-1] = par[:, None] if k == 2 else prev[par]
            rows[:, -1] = keys % self.V
            del keys
            out.append((rows, self.counts.pop(k), par))
            prev = rows
        return out


def shuffle_round(comm, local, cuts: np.ndarray, owned: OwnedCounts) -> None:
    """One round's local counts of orders 2..N sent to their owners and added to
    ``owned`` there. A k-gram travels as (its prefix's position in what this rank sent of
    order k-1 in this round, its last word, its count): three numbers whatever k, and the
    owner finds the prefix's row from that position, so merging is one sort of int64 keys
    ``parent * V + word`` (``unique_inverse``), as in ``count_ngrams``. The local counts of
    each order are dropped from ``local`` once sent."""
    P, V = comm.size, owned.V
    prev_pos = prev_inv = prev_off = None
    for k in range(2, owned.order + 1):
        rows, cnt = local.grams[k - 1], local.counts[k - 1]
        order, send_n, pos = block_positions(range_owner(rows[:, 0], cuts), P)
        first = (rows[:, 0].astype(np.int64) if k == 2
                 else prev_pos[local.parents[k - 1]])
        packed = pack_rows(order, first, rows[:, -1], cnt)
        local.grams[k - 1] = local.counts[k - 1] = None  # sent: memory back at once
        del rows, cnt, first, order
        with comm.phase(f"shuffle {k}-grams"):
            recv_n = comm.alltoall(send_n, np.empty(P, dtype=np.int64))
            got = alltoallv_rows(comm, packed, send_n, recv_n, 3, np.int64)
        del packed
        with comm.tracer.compute("merge"):
            off = np.cumsum(recv_n) - recv_n
            if k == 2:
                parent = got[:, 0]
            else:  # the prefix's row in this round's merge of k-1, then in the table
                src = np.repeat(np.arange(P), recv_n)
                parent = owned.placed[prev_inv[prev_off[src] + got[:, 0]]]
            parent = parent.astype(np.int64)  # parent * V + word, in one array
            parent *= V
            parent += got[:, 1]
            uniq, inv, _ = unique_inverse(parent)
            merged = np.bincount(inv, weights=got[:, 2], minlength=len(uniq)).astype(np.int64)
            del got, parent
            owned.add(k, uniq, merged)
        prev_pos, prev_inv, prev_off = pos, inv, off
