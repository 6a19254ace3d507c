"""Counts sent to the rank that owns them, a round of sentences at a time (docs/ngram.md).

Ownership. Word ids are cut into P ranges (``choose_cuts``); a gram of order k >= 2 belongs
to the rank whose range holds its first word.

Rounds. A rank does not send its whole shard at once: ``split_sentences`` cuts it into
pieces of about ``chunk_tokens`` tokens (whole sentences), and every rank takes part in as
many rounds as the rank with the most pieces (the others send nothing in their last ones).
A round finds the piece's gram starts (``window_starts``: positions with at least two
tokens of their sentence from there on), sends each start to the owner of its first word
as its window s[p .. p+N-1] (``shuffle_windows``: N int32, -1 past the sentence's end), and
the owner counts the grams that start its windows, every order at once, into the counts
it owns (``count_windows``, ``OwnedCounts``). The k-grams of the text are exactly the
first k words of the windows, so nothing is counted twice: the owner's sort is the only
one. A round holds its windows and a few arrays as long as its piece, so the piece size,
not the shard, bounds that peak; what stays is 16 bytes per distinct owned gram. Counts
are sums, so the owned counts are the same integers for any cut into rounds, and
everything estimated from them is the same to the bit.

Merging a round. Order k is kept as sorted int64 keys ``parent * V + word`` (parent: the
row of the gram's prefix in order k-1; for k = 2 the first word) and their counts. The
round's distinct keys are looked up in the kept ones with one binary search: equal keys add
their counts, new ones are inserted (``np.insert``). Rows of order k-1 move forward when
new rows are inserted before them, but keep their order, so the parents of order k are
renumbered by that move (``moved``) and the keys stay sorted.
"""

from __future__ import annotations

import numpy as np

from minipar.models.ngram_counts import distinct_sorted, row_numbers, sort_order

__all__ = ["choose_cuts", "range_owner", "alltoallv_rows", "block_positions", "OwnedCounts",
           "window_starts", "shuffle_windows", "count_windows", "merge_sorted", "pack_rows"]


def range_owner(first_words: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts[1:-1], first_words, side="right").astype(np.int64)


def block_positions(dest: np.ndarray, P: int):
    """(send order, counts per rank, position of each item within its rank's block)."""
    # a stable sort of small integers is a radix sort in NumPy: much faster than of int64
    order = np.argsort(dest.astype(np.int16 if P < 2**15 else np.int64), kind="stable")
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


def window_starts(s: np.ndarray, eos: int):
    """(positions p of the sentence stream ``s`` where a gram of order >= 2 starts, room[p]:
    the tokens of p's sentence from p to its </s>, both int32 when they fit)."""
    idx = np.int32 if len(s) < 2**31 else np.int64
    ends = np.flatnonzero(s == eos)
    room = np.repeat((ends + 1).astype(idx), np.diff(ends, prepend=-1))
    room -= np.arange(len(s), dtype=idx)
    pos = np.flatnonzero(room >= 2).astype(idx)
    return pos, room[pos]


def choose_cuts(comm, first_words: np.ndarray, V: int) -> np.ndarray:
    """cuts (P + 1 ids, cuts[0] = 0, cuts[P] = V): rank r owns first words cuts[r] ..
    cuts[r+1]-1, chosen so that each range holds about 1/P of the windows (gram start
    positions) of the first round's pieces, which stand for the rest: an owner's counting
    is a sort of its windows."""
    w = np.bincount(first_words, minlength=V).astype(np.int64)
    with comm.phase("choose ranges"):
        comm.allreduce(w)
    cum = np.cumsum(w)
    share = cum[-1] * np.arange(1, comm.size) / comm.size
    return np.concatenate([[0], np.searchsorted(cum, share, side="right"), [V]]).astype(np.int64)


def shuffle_windows(comm, s: np.ndarray, pos: np.ndarray, room: np.ndarray, cuts: np.ndarray,
                    owned: OwnedCounts) -> None:
    """One round: every gram start p of this rank's piece goes to the owner of its first
    word as its window s[p .. p+N-1] (N int32, -1 past its sentence's end), and the owner
    counts its windows (``count_windows``) into ``owned``. A k-gram starting at p is the
    first k words of p's window, so one exchange carries every order, N numbers a start.
    The block for rank r is its windows' N columns one after the other: (N, n_r) int32."""
    P, N = comm.size, owned.order
    order, send_n, _ = block_positions(range_owner(s[pos], cuts), P)
    at, left, s32 = pos[order].astype(np.int64), room[order], s.astype(np.int32)
    send = np.empty(N * len(at), dtype=np.int32)
    ends = np.cumsum(send_n)
    for r in range(P):  # rank r's block: column j of its windows is row j
        lo, hi = int(ends[r] - send_n[r]), int(ends[r])
        block = send[N * lo:N * hi].reshape(N, hi - lo)
        for j in range(N):
            col = block[j]
            np.take(s32, np.minimum(at[lo:hi] + j, len(s) - 1), out=col)
            col[left[lo:hi] <= j] = -1  # past the sentence
    del at, left, s32
    with comm.phase("shuffle windows"):
        recv_n = comm.alltoall(send_n, np.empty(P, dtype=np.int64))
        got = np.empty(N * int(recv_n.sum()), dtype=np.int32)
        comm.alltoallv(send, send_n * N, got, recv_n * N)
    del send
    with comm.tracer.compute("merge"):
        starts = N * (np.cumsum(recv_n) - recv_n)
        blocks = [got[a:a + N * n].reshape(N, n) for a, n in zip(starts.tolist(),
                                                                  recv_n.tolist())]
        cols = [np.concatenate([b[j] for b in blocks]) for j in range(N)]
        del got, blocks
        count_windows(cols, owned)


def count_windows(cols: list, owned: OwnedCounts) -> None:
    """Add the grams that start the windows to ``owned``; ``cols[j]`` is the j-th word of
    every window (int32, -1 past a sentence). Order by order as ``count_ngrams`` does: a
    window's k-gram key is rank_(k-1) V + w_(k-1), rank_(k-1) its (k-1)-gram's row among
    this round's distinct ones; the round's distinct keys, their parents moved to the
    table's rows of order k-1 (``placed``), are merged into the table."""
    V, n = owned.V, len(cols[0])
    small = np.int32 if n < 2**31 else np.int64  # positions and ranks: 4 bytes do
    idx = np.arange(n, dtype=small)
    rank = cols[0]  # order 2's parent is the first word itself
    for k in range(2, owned.order + 1):
        word = cols[k - 1][idx]
        if k > 2:
            keep = word >= 0
            idx, rank, word = idx[keep], rank[keep], word[keep]
            del keep
        key = rank.astype(np.int64)
        del rank
        key *= V
        key += word
        del word
        # from k = 3 on, idx is in the order of the (k-1)-grams: sorted but for runs
        perm = sort_order(key, runs=k > 2)
        sk = key[perm]
        del key
        uniq, cnt, new = distinct_sorted(sk)
        del sk
        idx = idx[perm]
        del perm
        rank = np.cumsum(new, dtype=small)
        rank -= 1
        del new
        if k > 2:  # parents: this round's rows of order k-1 -> the table's rows
            uniq = owned.placed[uniq // V] * V + uniq % V
        owned.add(k, uniq, cnt.astype(np.int64))
