"""Scoring text with a model that stays sharded over the ranks (``DistributedKN``).

Each rank reads its own byte range of the test file and builds, for every token it
predicts, the rows ``backoff_score`` needs (minipar/models/ngram_index.py): the grams that
end at the word, of every length k, and the histories before it, of every length j. A row
of length k >= 2 belongs to the rank that owns its first word, so per order one
``alltoallv`` sends the rows there and one brings back (log10 p, log10 backoff), NaN for a
gram the model does not list. Unigrams are on every rank (their backoffs are gathered once).
Then, per token and exactly as ``backoff_score`` does,

    log10 p(w | h) = log10 p(w | h_K) + sum_{j = K}^{n-1} log10 bo(h_j)

with K - 1 the longest listed history suffix. The values are those of the one-process model
and the sum runs in the same order, so each token's score is the same bits; the scores are
gathered in file order on rank 0, which sums them as ``NGramModel.perplexity`` does.

Sampling (``sharded_sample``) needs, for each sentence being drawn, the distribution over
every next word. Per token, rank 0 broadcasts the sentences' histories; for each history
suffix h_j (j = 1 .. n-1 words) the owner of its first word answers with whether h_j is
listed, its log10 backoff, and every listed gram (h_j, w) with its log10 p (all of them
are on that rank: they share h_j's first word). Rank 0 gathers the answers and builds

    d_0 = log10 p(w)  (every rank has the unigrams),
    d_j = log10 p(w | h_j) where (h_j, w) is listed, else d_{j-1} + log10 bo(h_j)

for j = 1 .. n-1 in turn: the same terms added in the same order as above, so the
distribution is the one-process model's, bit for bit, and with the same seed so are the
sentences (``models/ngram_lm.sample_sentences`` draws them for both).
"""

from __future__ import annotations

import numpy as np

from minipar.models.ngram_counts import sentence_stream
from minipar.models.ngram_index import history_matrix
from minipar.models.ngram_lm import history_rows, sample_sentences
from minipar.training.ngram_shuffle import alltoallv_rows, range_owner

__all__ = ["sharded_log10probs", "sharded_perplexity", "sharded_sample"]


def _lookup(comm, model, index, rows: np.ndarray, k: int):
    """(log10 p, log10 backoff) of k-gram rows from their owners; NaN where not listed."""
    ok = (rows >= 0).all(axis=1)
    q = np.flatnonzero(ok)
    dest = range_owner(rows[q, 0], model.cuts)
    order = np.argsort(dest, kind="stable")
    send_n = np.bincount(dest, minlength=comm.size).astype(np.int64)
    recv_n = comm.alltoall(send_n, np.empty(comm.size, dtype=np.int64))
    got = alltoallv_rows(comm, rows[q[order]].astype(np.int64), send_n, recv_n, k, np.int64)
    rank = index.lookup(got)
    found = rank >= 0
    vals = np.full((len(got), 2), np.nan)
    vals[found, 0] = model.logp[k - 1][rank[found]]
    vals[found, 1] = model.logbo[k - 1][rank[found]]
    back = alltoallv_rows(comm, vals, recv_n, send_n, 2, np.float64)
    out = np.full((len(rows), 2), np.nan)
    out[q[order]] = back
    return out


def sharded_log10probs(comm, model, ids: np.ndarray, bos: int, eos: int) -> np.ndarray:
    """log10 p of every token this rank predicts in ``ids`` (its whole sentences)."""
    N, V = model.order, model.V
    index = model.index
    bo1 = np.zeros(V)  # unigram backoffs: each rank computed those of its own range
    counts = np.diff(model.cuts)
    mine = model.logbo[0][model.cuts[comm.rank]:model.cuts[comm.rank + 1]]
    with comm.phase("unigram backoffs"):
        comm.allgatherv(np.ascontiguousarray(mine), bo1, counts.tolist())
    s = sentence_stream(ids, bos, eos)
    pred = np.flatnonzero(s != bos)
    G = history_matrix(s, pred, N, bos) if len(pred) else np.zeros((0, N), np.int64)
    n = G.shape[1]
    logp = np.full((len(G), n + 1), np.nan)  # logp[:, k]: the k-gram ending at the word
    logbo = np.zeros((len(G), n))            # logbo[:, j]: the history of length j, if listed
    listed = np.zeros((len(G), n), dtype=bool)
    logp[:, 1] = model.logp[0][G[:, -1]]
    if n > 1:
        h1 = G[:, -2]
        listed[:, 1] = h1 >= 0
        logbo[:, 1] = np.where(h1 >= 0, bo1[np.maximum(h1, 0)], 0.0)
    for k in range(2, n + 1):
        with comm.phase(f"query {k}-grams"):
            full = _lookup(comm, model, index, G[:, n - k:], k)
            logp[:, k] = full[:, 0]
            if k < n:
                ctx = _lookup(comm, model, index, G[:, n - 1 - k:n - 1], k)
                listed[:, k] = ~np.isnan(ctx[:, 0])
                logbo[:, k] = np.where(listed[:, k], ctx[:, 1], 0.0)
    K = np.ones(len(G), dtype=np.int64)
    for k in range(2, n + 1):
        K[~np.isnan(logp[:, k])] = k
    out = logp[np.arange(len(G)), K]
    for j in range(1, n):
        use = listed[:, j] & (j >= K)
        out[use] += logbo[use, j]
    return out


def sharded_perplexity(comm, model, ids: np.ndarray, vocab) -> dict | None:
    """``NGramModel.perplexity`` of the test text whose sentences ``ids`` this rank holds;
    the result on rank 0 (None elsewhere)."""
    bos, eos, unk = vocab.bos_id, vocab.eos_id, vocab.unk_id
    lp = sharded_log10probs(comm, model, ids, bos, eos)
    s = sentence_stream(ids, bos, eos)
    words = s[s != bos]
    with comm.phase("gather scores"):
        sizes = comm.gather(np.array([len(lp)], np.int64), np.empty(comm.size, np.int64))
        root = comm.rank == 0
        total_n = int(sizes.sum()) if root else 0
        counts = sizes.tolist() if root else None
        whole = comm.gatherv(lp, np.empty(total_n), counts)
        oov = comm.gatherv((words == unk).astype(np.uint8), np.empty(total_n, np.uint8), counts)
        sentences = comm.allreduce(np.array([int((s == bos).sum())], np.int64))[0]
    if not root:
        return None
    oov = oov.astype(bool)
    n, n_in = len(whole), int((~oov).sum())
    total = float(whole.sum())
    return {"tokens": n, "sentences": int(sentences), "oov": int(oov.sum()),
            "log10prob": total, "ppl": float(10 ** (-total / n)) if n else float("nan"),
            "ppl_without_oov": (float(10 ** (-whole[~oov].sum() / n_in)) if n_in
                                else float("nan"))}


def _answers(comm, model, H: np.ndarray):
    """This rank's part of the next-word distributions of the history rows ``H`` (B, n-1):
    heads (b, j, listed, log10 bo(h_j), m) for the suffixes h_j whose first word it owns,
    then the m (w, log10 p(w | h_j)) of each listed one, in the same order."""
    index, heads, pairs = model.index, [], []
    B, n = H.shape
    for j in range(1, n + 1):
        ctx = H[:, n - j:]
        b_mine = np.flatnonzero((ctx >= 0).all(axis=1))
        b_mine = b_mine[range_owner(ctx[b_mine, 0], model.cuts) == comm.rank]
        rank = index.lookup(ctx[b_mine])
        keys = index.keys[j]  # the (j+1)-grams, sorted by (rank of the prefix, word)
        lo = np.searchsorted(keys, np.maximum(rank, 0) * model.V)
        hi = np.searchsorted(keys, (np.maximum(rank, 0) + 1) * model.V)
        for b, r, a, z in zip(b_mine, rank, lo, hi):
            if r < 0:
                heads.append((b, j, 0, 0.0, 0))
                continue
            heads.append((b, j, 1, model.logbo[j - 1][r], z - a))
            pairs.append(np.stack([model.grams[j][a:z, -1].astype(np.float64),
                                   model.logp[j][a:z]], axis=1))
    return (np.array(heads, np.float64).reshape(-1, 5),
            np.concatenate(pairs) if pairs else np.zeros((0, 2)))


def _gather_rows(comm, rows: np.ndarray, width: int):
    """Every rank's (m_r, width) float64 rows stacked in rank order on rank 0."""
    sizes = comm.gather(np.array([rows.size], np.int64), np.empty(comm.size, np.int64))
    total = int(sizes.sum()) if comm.rank == 0 else 0
    got = comm.gatherv(np.ascontiguousarray(rows).reshape(-1), np.empty(total),
                       sizes.tolist() if comm.rank == 0 else None)
    return got.reshape(-1, width) if comm.rank == 0 else None


def _distributions(comm, model, H: np.ndarray):
    """(B, V) log10 next-word distributions of the history rows H, on rank 0 (None
    elsewhere). Every rank calls it with the same H."""
    with comm.phase("sample: ask the owners"):
        heads, pairs = _answers(comm, model, H)
        heads = _gather_rows(comm, heads, 5)
        pairs = _gather_rows(comm, pairs, 2)
    if comm.rank != 0:
        return None
    starts = np.concatenate([[0], np.cumsum(heads[:, 4])]).astype(np.int64)
    d = np.tile(model.logp[0], (len(H), 1))
    for i in np.lexsort((heads[:, 1], heads[:, 0])):  # by sentence, then j ascending
        b, listed, bo = int(heads[i, 0]), heads[i, 2], heads[i, 3]
        if listed:
            d[b] += bo
            w = pairs[starts[i]:starts[i + 1]]
            d[b, w[:, 0].astype(np.int64)] = w[:, 1]
    return d


def sharded_sample(comm, model, vocab, n: int, max_len: int = 100, temperature: float = 1.0,
                   seed: int = 0) -> list[np.ndarray] | None:
    """``NGramModel.sample`` of the sharded model: the sentences on rank 0 (None elsewhere),
    equal to the one-process model's with the same seed. Every rank calls it."""
    N = model.order
    if comm.rank == 0:
        def ask(histories):
            H = history_rows(histories, N, vocab.bos_id)
            comm.bcast(np.array([len(H)], np.int64))
            comm.bcast(H)
            return _distributions(comm, model, H)
        sents = sample_sentences(ask, vocab, n, max_len, temperature, seed)
        comm.bcast(np.zeros(1, np.int64))  # no more histories: the others stop serving
        return sents
    while True:
        size = comm.bcast(np.zeros(1, np.int64))
        if size[0] == 0:
            return None
        H = comm.bcast(np.empty((int(size[0]), N - 1), np.int64))
        _distributions(comm, model, H)
