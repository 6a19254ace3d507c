"""Count-based N-gram counting on P ranks, the MapReduce way, with the model built on rank 0.

    mpiexec -n 4 python -m minipar.train --model ngram --smoothing ml --tokens word
    mpiexec -n 2 python -m minipar.ngram fit --order 3 --smoothing addk   # built-in corpus

The path of ``minipar.train --model ngram`` for ML, add-k and Stupid Backoff, and of
``minipar.ngram fit`` under mpiexec where the sharded Kneser-Ney path does not apply
(ngram_train.py, ngram_distributed.py). What runs where (every arrow that crosses ranks is
a traced call of ``comm``):

1. read     every rank builds the same vocabulary and id stream from the text (no message).
2. map      rank r counts shard r of ``split_sentences``: P pieces of whole sentences,
            about len/P tokens each, so no n-gram crosses a cut.
3. shuffle  per order k, every k-gram g = (w_1 .. w_k) goes to its owner

                owner(g) = fmix64(FNV-1a(w_1 .. w_{k-1})) mod P        (k = 1: of w_1)

            (``alltoall`` of the row counts, ``alltoallv`` of the rows with their counts).
            A hash of the ids, not Python's ``hash()``: every rank and run agrees.
4. reduce   each rank adds up what it owns (``sort_unique_rows``): counts of whole
            sentences are sums, so the owned pieces partition the one-process counts.
5. tables   on rank 0: the owned counts are gathered (``gather`` of sizes, ``gatherv``
            of rows) and ``NGramModel.from_counts`` builds the log10 tables, scores the
            validation split, samples and saves ``model.npz``. Every step is a deterministic
            function of the merged arrays, so the model equals the one-process model bit
            for bit. ML, add-k and Stupid Backoff need only c(h .) = sum_x c(h x), which the
            owner of h has; Kneser-Ney also needs N1+(. g), counted by the owners of the
            longer grams: ngram_distributed.py routes those instead of gathering.
"""
from __future__ import annotations


import numpy as np

from minipar.comm import launch
from minipar.core.errors import DataError
from minipar.models.ngram_counts import (NGramCounts, count_ngrams, sort_unique_rows,
                                         split_sentences)
from minipar.models.ngram_lm import NGramModel

__all__ = ["owner", "shuffle", "exchange_counts", "check_top_order",
           "gather_counts", "parallel_counts", "fit_model"]

_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def owner(rows, size: int) -> np.ndarray:
    """Rank that owns each k-gram row: a hash of its context (first k-1 ids; k = 1: the id).

    FNV-1a over whole ids, then MurmurHash3's 64-bit finaliser, because ``mod P`` reads the
    low bits and FNV's multiply leaves those depending on the low bits of the ids only.
    """
    rows = np.asarray(rows)
    cols = rows[:, :max(rows.shape[1] - 1, 1)].astype(np.uint64)
    h = np.full(len(rows), _FNV_OFFSET, dtype=np.uint64)
    for j in range(cols.shape[1]):
        h = (h ^ cols[:, j]) * _FNV_PRIME  # uint64 arrays wrap around, as the hash wants
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return (h % np.uint64(size)).astype(np.int64)


def _pack(rows, counts) -> np.ndarray:
    """int64 rows of k + 1 columns, the ids then the count: one message carries both."""
    return np.concatenate([rows.astype(np.int64), counts.astype(np.int64)[:, None]], axis=1)


def shuffle(comm, rows, counts, dest):
    """Send row i and its count to rank ``dest[i]``; returns (rows, counts) received, in
    rank order. Rows and counts travel together as int64 rows of k + 1 columns."""
    P, k = comm.size, rows.shape[1]
    order = np.argsort(dest, kind="stable")
    packed = _pack(rows[order], counts[order])
    send_n = np.bincount(dest, minlength=P).astype(np.int64)
    recv_n = comm.alltoall(send_n, np.empty(P, dtype=np.int64))
    got = np.empty((int(recv_n.sum()), k + 1), dtype=np.int64)
    comm.alltoallv(packed.reshape(-1), send_n * (k + 1), got.reshape(-1), recv_n * (k + 1))
    return got[:, :k].astype(np.int32), got[:, k].copy()


def exchange_counts(comm, local: NGramCounts) -> list:
    """Steps 3-4: per order, (rows, counts) of the k-grams this rank owns, summed over ranks."""
    owned = []
    for k in range(1, local.order + 1):
        rows, cnt = local.grams[k - 1], local.counts[k - 1]
        with comm.phase(f"shuffle {k}-grams"):
            got_rows, got_cnt = shuffle(comm, rows, cnt, owner(rows, comm.size))
        with comm.tracer.compute("merge"):
            owned.append(sort_unique_rows(got_rows, got_cnt))
    return owned


def gather_counts(comm, owned: list, sentences: int, tokens: int, root: int = 0,
                  in_order: bool = False):
    """Step 5a: the owned counts of every rank, merged on ``root`` (None elsewhere), and the
    (P, N) table of grams owned per rank and order (on ``root``). ``in_order``: the ranks'
    parts, each sorted, follow each other in rank order (ranges of first words,
    ngram_distributed.py), so the merge is their concatenation; else (the hash) a sort."""
    N = len(owned)
    mine = np.array([len(c) for _, c in owned], dtype=np.int64)
    with comm.phase("gather counts"):
        sizes = comm.gather(mine, np.empty((comm.size, N), dtype=np.int64), root)
        grams, counts = [], []
        for k in range(1, N + 1):
            rows, cnt = owned[k - 1]
            packed = _pack(rows, cnt).reshape(-1)
            n = (sizes[:, k - 1] * (k + 1)).tolist() if comm.rank == root else None
            got = np.empty(sum(n) if n else 0, dtype=np.int64)
            comm.gatherv(packed, got, n, root)
            if comm.rank == root:
                got = got.reshape(-1, k + 1)
                if in_order:
                    r, c = got[:, :k].astype(np.int32), got[:, k].copy()
                    _check_sorted(r, k)
                else:
                    r, c = sort_unique_rows(got[:, :k], got[:, k])  # disjoint parts: a sort
                if len(r) != len(got):
                    raise RuntimeError(f"two ranks own the same {k}-gram")
                grams.append(r)
                counts.append(c)
    if comm.rank != root:
        return None, None
    return NGramCounts(N, grams, counts, sentences=sentences, tokens=tokens), sizes


def _check_sorted(rows: np.ndarray, k: int) -> None:
    """Rows strictly increasing in lexicographic order (one vectorised pass)."""
    if len(rows) < 2:
        return
    a, b = rows[:-1], rows[1:]
    diff = a != b
    first = np.argmax(diff, axis=1)  # the first column where two neighbours differ
    i = np.arange(len(a))
    if not (diff.any(axis=1) & (a[i, first] < b[i, first])).all():
        raise RuntimeError(f"the ranks' {k}-grams are not in order")


def parallel_counts(comm, ids, order: int, bos: int, eos: int) -> dict:
    """Steps 2-4 on one id stream, and the totals every rank needs (one allreduce)."""
    shard = split_sentences(ids, comm.size, eos)[comm.rank]
    with comm.tracer.compute("count"):
        local = count_ngrams(shard, order, bos, eos)
    owned = exchange_counts(comm, local)
    # sentences, tokens, then the distinct k-grams of every order (each is owned once)
    tot = np.array([local.sentences, local.tokens] + [len(c) for _, c in owned], np.int64)
    with comm.phase("totals"):
        comm.allreduce(tot)
    return {"shard_tokens": len(shard), "owned": owned, "sentences": int(tot[0]),
            "tokens": int(tot[1]), "ngrams": tot[2:].tolist()}


def fit_model(comm, ids, vocab, order: int, smoothing: str, k: float = 1.0,
              alpha: float = 0.4) -> NGramModel | None:
    """``python -m minipar.ngram fit`` under mpiexec: the counts of steps 2-5 shared out over
    the ranks as for ``--model ngram``, the model built on rank 0 (None elsewhere). Equal to
    ``NGramModel.fit`` on one process, count for count."""
    part = parallel_counts(comm, ids, order, vocab.bos_id, vocab.eos_id)
    launch.agree(comm, check_top_order, part["ngrams"], order)
    merged, _ = gather_counts(comm, part["owned"], part["sentences"], part["tokens"])
    if comm.rank != 0:
        return None
    with comm.tracer.compute("tables"):
        return NGramModel.from_counts(merged, vocab, smoothing, k=k, alpha=alpha)


def check_top_order(ngrams: list, order: int) -> None:
    if ngrams[-1] == 0:
        raise DataError(f"--order {order}: no training sentence holds a {order}-gram "
                        f"(<s>, {order - 2} tokens and </s>); lower --order")
