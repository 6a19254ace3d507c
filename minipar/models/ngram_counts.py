"""N-gram counting: a pure, mergeable function from an id stream to per-order counts.

Input: an id stream of sentences, each closed by ``</s>`` (the ``Vocab.encode`` format);
``<s>`` is implied before every sentence and inserted here (``sentence_stream``). A k-gram
is any k consecutive tokens inside one ``<s> w1 ... wm </s>``: so ``<s>`` can only be its
first token and ``</s>`` only its last, as in KenLM's lmplz.

Output (``NGramCounts``): for every order k = 1..N, the distinct k-grams as rows of ids
``grams[k-1]`` (shape (m_k, k), int32, sorted lexicographically) and their raw counts
``counts[k-1]`` (int64). Rows, not packed keys, are the canonical form: a 5-gram over a
50,000-word vocabulary does not fit in 64 bits (50000^5 > 2^63), rows always do.
``encode_keys`` gives the base-|V| int64 code when it fits (for hashing n-grams to ranks).

How counting is vectorised. Every position p of the stream starts at most one k-gram; it is
valid when its sentence still has k tokens from p on. Each order reuses the previous one:

    key_k(p) = rank_{k-1}(p) * |V| + s[p + k - 1]

where rank_{k-1}(p) is the index of the (k-1)-gram at p among the sorted distinct (k-1)-grams.
one sort of key_k yields the distinct k-grams in lexicographic order, their counts and
rank_k(p); keys stay below N_tokens*|V|. The positions are kept in the sorted order of
their gram, so from k = 3 on the keys arrive sorted but for runs of equal prefixes, which
a stable sort merges in a fraction of the time of a full sort.
No Python loop runs per token; the only loop is over the orders.

Merging. Counting is a sum over sentences, so counts of a whole stream equal the merge
(``merge_counts``: concatenate, sort rows, add equal rows) of the counts of its parts,
provided every part holds whole sentences: cut only right after a ``</s>``
(``split_sentences`` does that). A cut inside a sentence would invent a ``<s>`` and lose the
n-grams that cross the cut; parallel counting therefore shards by sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minipar.data.tokenize import BOS, EOS

__all__ = ["NGramCounts", "sentence_stream", "count_ngrams", "merge_counts", "row_numbers",
           "split_sentences", "encode_keys", "decode_keys", "sort_unique_rows", "sort_order",
           "distinct_sorted", "unique_inverse"]


@dataclass
class NGramCounts:
    """Distinct n-grams of every order (rows of ids, lexicographic order) and raw counts.

    ``sentences`` is the number of sentences counted; ``tokens`` the number of predicted
    tokens (every token but ``<s>``, so ``</s>`` included). ``count_ngrams`` also keeps
    ``parents`` (entry 0 unused), which spares later steps from looking the prefixes up.
    """

    order: int
    grams: list
    counts: list
    sentences: int = 0
    tokens: int = 0
    parents: list | None = None  # parents[k-1][i]: row of k-gram i's prefix in order k-1
    # (int32 when the table fits)

    def __post_init__(self):
        if len(self.grams) != self.order or len(self.counts) != self.order:
            raise ValueError(f"need {self.order} orders of grams and counts")

    def num_grams(self) -> list[int]:
        return [len(c) for c in self.counts]

    def equals(self, other: "NGramCounts") -> bool:
        """Exact equality of every array (what a parallel count must reproduce)."""
        return (self.order == other.order and self.sentences == other.sentences
                and self.tokens == other.tokens
                and all(np.array_equal(a, b) for a, b in zip(self.grams, other.grams))
                and all(np.array_equal(a, b) for a, b in zip(self.counts, other.counts)))


def sentence_stream(ids, bos: int = BOS, eos: int = EOS) -> np.ndarray:
    """``w.. </s> w.. </s>`` -> ``<s> w.. </s> <s> w.. </s>`` (int64).

    A stream that does not end in ``</s>`` gets one (its last sentence is closed). ``<s>``
    must not occur in the input: it is implied, never a token of the text.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if len(ids) == 0:
        return ids
    if (ids == bos).any():
        raise ValueError("the id stream contains <s>; sentence starts are implied by </s>")
    if ids[-1] != eos:
        ids = np.append(ids, eos)
    starts = np.concatenate([[0], np.flatnonzero(ids[:-1] == eos) + 1])
    return np.insert(ids, starts, bos)


def count_ngrams(ids, order: int, bos: int = BOS, eos: int = EOS) -> NGramCounts:
    """Counts of every k-gram, k = 1..order, of a stream of sentences (see module docstring)."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    s = sentence_stream(ids, bos, eos)
    empty = [np.zeros((0, k), dtype=np.int32) for k in range(1, order + 1)]
    if len(s) == 0:
        none = [np.zeros(0, dtype=np.int64)] * order
        return NGramCounts(order, empty, none, parents=[None] + none[1:])
    V = int(s.max()) + 1
    # positions, room and ranks fit in 4 bytes below 2^31 tokens: half the memory of the
    # loop's arrays, each as long as the text; the keys need 8
    idx = np.int32 if len(s) < 2**31 else np.int64
    ends = np.flatnonzero(s == eos)
    pos = np.arange(len(s), dtype=idx)
    # room[p]: how many tokens of p's sentence start at p (p .. its </s>).
    room = np.repeat((ends + 1).astype(idx), np.diff(ends, prepend=-1))
    room -= pos
    cnt = np.bincount(s)  # unigrams: the ids are small, a count per id needs no sort
    uniq = np.flatnonzero(cnt)
    rank = (np.cumsum(cnt > 0) - 1).astype(idx)[s]
    cnt = cnt[uniq]
    grams = [uniq.astype(np.int32)[:, None]]
    counts = [cnt.astype(np.int64)]
    parents = [None]
    for k in range(2, order + 1):
        keep = room >= k  # room, rank: aligned with pos
        pos, rank, room = pos[keep], rank[keep], room[keep]
        del keep
        key = rank.astype(np.int64)
        del rank
        key *= V
        key += s[pos + (k - 1)]
        # from k = 3 on, pos is in the order of the (k-1)-grams, so the keys are sorted but
        # for runs of equal prefixes
        perm = sort_order(key, runs=k > 2)
        sk = key[perm]
        del key
        uniq, cnt, new = distinct_sorted(sk)
        del sk
        pos, room = pos[perm], room[perm]
        del perm
        rank = np.cumsum(new, dtype=idx)
        rank -= 1
        del new
        rows = np.empty((len(uniq), k), dtype=np.int32)
        parents.append(row_numbers(uniq // V, len(grams[-1])))
        rows[:, :-1] = grams[-1][parents[-1]]
        rows[:, -1] = uniq % V
        grams.append(rows)
        counts.append(cnt.astype(np.int64))
    return NGramCounts(order, grams, counts, sentences=len(ends), tokens=len(s) - len(ends),
                       parents=parents)


def row_numbers(rows: np.ndarray, n: int) -> np.ndarray:
    """Row numbers of a table of n rows as int32 when they fit: they index as well in 4
    bytes as in 8, and there is one per gram (no copy when they are int32 already)."""
    return rows.astype(np.int32, copy=False) if n < 2**31 else rows


def _sort_perm(key: np.ndarray) -> np.ndarray:
    """A permutation that sorts ``key`` (>= 0) stably: (key << b) | position sorted by a plain
    sort when both fit in 63 bits (about twice as fast as an argsort here)."""
    n = len(key)
    b = max(n - 1, 1).bit_length()
    if n == 0 or int(key.max()).bit_length() + b > 63:
        return np.argsort(key, kind="stable")
    packed = key.astype(np.int64)  # a copy, sorted in place: no other array as long
    packed <<= b
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << b) - 1
    return packed


def sort_order(key: np.ndarray, runs: bool = False) -> np.ndarray:
    """The permutation that sorts ``key`` (>= 0) stably. ``runs``: the keys are sorted but
    for runs of equal prefixes, where a stable sort (a merge of runs) is 3-5x faster."""
    return np.argsort(key, kind="stable") if runs else _sort_perm(key)


def distinct_sorted(sk: np.ndarray):
    """(the distinct keys, the count of each, new: True where a run starts) of sorted keys."""
    new, starts = _runs(sk)
    return sk[starts], np.diff(np.append(starts, len(sk))), new


def _runs(sk: np.ndarray):
    """(new, starts) of a sorted array: new[i] when sk[i] starts a run of equal values."""
    new = np.empty(len(sk), dtype=bool)
    new[:1] = True
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    return new, np.flatnonzero(new)


def unique_inverse(key: np.ndarray):
    """``np.unique(key, return_inverse=True, return_counts=True)`` for keys >= 0, faster
    (``_sort_perm``'s plain sort of packed keys)."""
    n = len(key)
    if n == 0 or int(key.min()) < 0:
        return np.unique(key, return_inverse=True, return_counts=True)
    perm = _sort_perm(key)
    sk = key[perm]
    new, starts = _runs(sk)
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.cumsum(new) - 1
    return sk[starts], inverse, np.diff(np.append(starts, n))


def sort_unique_rows(rows: np.ndarray, counts: np.ndarray):
    """Rows sorted lexicographically with equal rows merged and their counts added."""
    rows = np.asarray(rows)
    counts = np.asarray(counts, dtype=np.int64)
    if len(rows) == 0:
        return rows.reshape(0, rows.shape[1]).astype(np.int32), counts
    order = np.lexsort(rows.T[::-1])  # lexsort's last key is the primary one
    rows, counts = rows[order], counts[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    starts = np.flatnonzero(new)
    return rows[starts].astype(np.int32), np.add.reduceat(counts, starts)


def merge_counts(parts) -> NGramCounts:
    """Counts of the concatenation of the (whole-sentence) shards that gave ``parts``."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_counts needs at least one NGramCounts")
    order = parts[0].order
    if any(p.order != order for p in parts):
        raise ValueError("cannot merge counts of different orders")
    grams, counts = [], []
    for k in range(order):
        rows, cnt = sort_unique_rows(np.concatenate([p.grams[k] for p in parts]),
                                     np.concatenate([p.counts[k] for p in parts]))
        grams.append(rows)
        counts.append(cnt)
    return NGramCounts(order, grams, counts, sentences=sum(p.sentences for p in parts),
                       tokens=sum(p.tokens for p in parts))


def split_sentences(ids, parts: int, eos: int = EOS) -> list[np.ndarray]:
    """Cut a stream into ``parts`` pieces of whole sentences, each about len/parts tokens.

    A cut goes right after the first ``</s>`` at or past its even share; pieces may be empty
    when there are fewer sentences than parts.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    ends = np.flatnonzero(ids == eos) + 1  # cut points: just after each </s>
    if len(ends) == 0:
        return [ids] + [ids[:0]] * (parts - 1)
    targets = (np.arange(1, parts) * len(ids)) // parts
    j = np.searchsorted(ends, targets)
    cuts = np.where(j < len(ends), ends[np.minimum(j, len(ends) - 1)], len(ids))
    bounds = np.concatenate([[0], np.maximum.accumulate(cuts), [len(ids)]])
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def encode_keys(rows: np.ndarray, base: int) -> np.ndarray:
    """Base-|V| positional code of k-gram rows, key = sum_i w_i base^(k-1-i), as int64.

    Raises OverflowError when base^k does not fit in int64; keep the rows then.
    """
    rows = np.asarray(rows, dtype=np.int64)
    k = rows.shape[1]
    if base ** k > np.iinfo(np.int64).max:
        raise OverflowError(f"{k}-grams over {base} ids need {base}^{k} > 2^63 keys")
    key = np.zeros(len(rows), dtype=np.int64)
    for j in range(k):
        key = key * base + rows[:, j]
    return key


def decode_keys(keys, base: int, k: int) -> np.ndarray:
    """Rows of k ids from ``encode_keys`` codes."""
    keys = np.asarray(keys, dtype=np.int64)
    rows = np.empty((len(keys), k), dtype=np.int32)
    for j in range(k - 1, -1, -1):
        rows[:, j] = keys % base
        keys = keys // base
    return rows
