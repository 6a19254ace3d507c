"""Count-based N-gram training on P ranks, the MapReduce way: ``--model ngram``.

    mpiexec -n 4 python -m minipar.train --model ngram --order 5 --smoothing kn --tokens word

What runs where (every arrow that crosses ranks is a traced call of ``comm``):

1. read     every rank builds the same vocabulary and id stream from the text (no message).
2. map      rank r counts shard r of ``split_sentences``: P pieces of whole sentences,
            about len/P tokens each, so no n-gram crosses a cut.
3. shuffle  per order k, every k-gram g = (w_1 .. w_k) goes to its owner

                owner(g) = fmix64(FNV-1a(w_1 .. w_{k-1})) mod P        (k = 1: of w_1)

            (``alltoall`` of the row counts, ``alltoallv`` of the rows with their counts).
            A hash of the ids, not Python's ``hash()``: every rank and run agrees.
4. reduce   each rank adds up what it owns (``sort_unique_rows``): counts of whole
            sentences are sums, so the owned pieces partition the one-process counts.
5. stats    (``--smoothing kn``) adjusted counts need the opposite partition: a(g) for a
            k-gram g below the top order is N_{1+}(. g), the number of distinct (k+1)-grams
            x g, which live with their own context x w_1 .. w_{k-1}. Each rank takes the
            suffixes g of the distinct (k+1)-grams it owns, counts them, and sends each to
            owner(g) (a second ``alltoallv``); the owner adds them up:

                a(g) = c(g)                 top order, or g starts with <s>
                     = sum_ranks #{x g owned there}    otherwise;   a(<s>) = 0

            counts-of-counts t_{k,j} = #{g of order k : a(g) = j}, j = 1..4, are summed
            with one ``allreduce`` and every rank gets the discounts

                Y = t1 / (t1 + 2 t2),   D_j = j - (j + 1) Y t_{j+1} / t_j   (j = 1, 2, 3)

            (0.5, 1, 1.5 when some t_j is 0 or D_j falls outside [0, j], as kneser_ney.py).
            ML, add-k and Stupid Backoff need only c(h .) = sum_x c(h x): no exchange, as
            every h x is with the owner of h.
6. tables   on rank 0: the owned counts are gathered (``gather`` of sizes, ``gatherv``
            of rows) and ``NGramModel.from_counts`` builds the log10 tables, scores the
            validation split, samples and saves ``model.npz``. One rank, because the model
            must be whole to be saved and to score any text (and KN's p(w | c') of the
            suffix c'w lives with the owner of c', not of c: one more exchange per order).
            It recomputes the statistics of 5 from the merged counts; the run checks that
            both give the same discounts. Every step is a deterministic function of the
            merged arrays, so the model equals the one-process model bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from minipar.comm import launch
from minipar.core.errors import ConfigError, DataError
from minipar.models.kneser_ney import discounts_from_t
from minipar.models.ngram_counts import (NGramCounts, count_ngrams, sort_unique_rows,
                                         split_sentences)
from minipar.training.run_dir import choose_run_dir, write_summary
from minipar.data import load_corpus
from minipar.models.ngram_lm import NGramModel

__all__ = ["owner", "shuffle", "exchange_counts", "kn_statistics", "check_top_order",
           "gather_counts", "parallel_counts", "run_ngram"]

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


def kn_statistics(comm, owned: list, bos: int):
    """Step 5: (adjusted counts of the owned grams per order, t (N, 5) summed, discounts)."""
    N = len(owned)
    a = [None] * N
    a[N - 1] = owned[N - 1][1].copy()
    for k in range(N - 1, 0, -1):  # a of the k-grams from the (k+1)-grams owned anywhere
        rows, cnt = owned[k - 1]
        up = owned[k][0]
        with comm.tracer.compute("suffixes"):
            sfx, n = sort_unique_rows(up[:, 1:], np.ones(len(up), dtype=np.int64))
        with comm.phase(f"continuation {k}-grams"):
            got_rows, got_n = shuffle(comm, sfx, n, owner(sfx, comm.size))
        with comm.tracer.compute("merge"):
            # suffixes received are owned k-grams: adding 0 for each owned row aligns the sums
            same, cont = sort_unique_rows(np.concatenate([rows, got_rows]),
                                          np.concatenate([np.zeros(len(rows), np.int64), got_n]))
        if len(same) != len(rows):
            raise RuntimeError(f"rank {comm.rank} received {k}-gram suffixes it does not own")
        a[k - 1] = np.where(rows[:, 0] == bos, cnt, cont)
    a[0] = np.where(owned[0][0][:, 0] == bos, 0, a[0])  # <s> is never predicted
    t = np.stack([np.bincount(np.minimum(x[x > 0], 5), minlength=6)[:5] for x in a])
    t = np.ascontiguousarray(t, dtype=np.int64)
    with comm.phase("counts-of-counts"):
        comm.allreduce(t)
    return a, t, [discounts_from_t(t[k], k + 1)[0] for k in range(N)]


def gather_counts(comm, owned: list, sentences: int, tokens: int, root: int = 0):
    """Step 6a: the owned counts of every rank, merged on ``root`` (None elsewhere), and the
    (P, N) table of grams owned per rank and order (on ``root``)."""
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
                r, c = sort_unique_rows(got[:, :k], got[:, k])  # disjoint parts: a sort
                if len(r) != len(got):
                    raise RuntimeError(f"two ranks own the same {k}-gram")
                grams.append(r)
                counts.append(c)
    if comm.rank != root:
        return None, None
    return NGramCounts(N, grams, counts, sentences=sentences, tokens=tokens), sizes


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


def _order(cfg) -> int:
    order = cfg.order if cfg.order is not None else (cfg.context or 4) + 1
    if order < 1:
        raise ConfigError(f"--order must be at least 1, got {order}")
    return order


def check_top_order(ngrams: list, order: int) -> None:
    if ngrams[-1] == 0:
        raise DataError(f"--order {order}: no training sentence holds a {order}-gram "
                        f"(<s>, {order - 2} tokens and </s>); lower --order")


def _load(cfg, tracer):
    with tracer.compute("read"):
        corpus = load_corpus(cfg.data, cfg.valid, tokens=cfg.tokens or "char",
                             lower=cfg.lower, max_chars=cfg.max_chars)
    if len(corpus.train) == 0:
        raise DataError(f"{corpus.names.get('train', 'data')}: no training tokens to count")
    return corpus


def run_ngram(comm, cfg) -> int:
    """``python -m minipar.train --model ngram``: steps 1-6 and the run's report."""
    t_start = time.perf_counter()
    # user mistakes go through launch.agree: every rank stops with the same one line
    order = launch.agree(comm, _order, cfg)
    corpus = launch.agree(comm, _load, cfg, comm.tracer)
    vocab = corpus.vocab
    run_dir = choose_run_dir(comm, cfg.out, "ngram")
    talk = comm.rank == 0 and not cfg.quiet
    if talk:
        print("\n".join([f"minipar: {comm.size} rank{'s' if comm.size > 1 else ''} "
                         f"({comm.library}); {order}-gram {cfg.smoothing}, MapReduce counting",
                         f"data: {corpus.summary()}", f"run directory {run_dir}"]
                        + [f"note: {note}" for note in comm.notes]), flush=True)
    part = parallel_counts(comm, corpus.train, order, vocab.bos_id, vocab.eos_id)
    launch.agree(comm, check_top_order, part["ngrams"], order)
    stats = None
    if cfg.smoothing == "kn":
        _, t, discounts = kn_statistics(comm, part["owned"], vocab.bos_id)
        stats = {"counts_of_counts": t[:, 1:].tolist(), "discounts": discounts}
    merged, sizes = gather_counts(comm, part["owned"], part["sentences"], part["tokens"])
    result = launch.agree(comm, _finish_on_root, comm, cfg, corpus, merged, stats, run_dir)
    with comm.phase("report"):
        shards = comm.gather(np.array([part["shard_tokens"]], dtype=np.int64),
                             np.empty(comm.size, dtype=np.int64))
    files = [os.path.join(run_dir, f) if cfg.trace else None for f in ("trace.json",
                                                                      "timeline.png")]
    rows = comm.report(chrome=files[0], png=files[1], table=talk)
    if comm.rank != 0:
        return 0
    result["summary"].update(
        seconds=time.perf_counter() - t_start, distinct_ngrams=part["ngrams"],
        per_rank=[{"rank": r["rank"], "shard_tokens": int(shards[r["rank"]]),
                   "owned_ngrams": sizes[r["rank"]].tolist(),
                   **{k: r[k] for k in ("comm_s", "compute_s", "wait_s", "bytes_sent",
                                        "bytes_recv", "msgs_sent", "mpi_colls")}}
                  for r in rows])
    write_summary(run_dir, result["summary"])
    print("\n".join(result["lines"] + [f"run directory: {run_dir} (summary.json, model.npz"
                                       f"{', trace.json, timeline.png' if cfg.trace else ''})"]),
          flush=True)
    return 0


def _finish_on_root(comm, cfg, corpus, merged, stats, run_dir):
    """Step 6b on rank 0: tables, validation perplexity, a sample, model.npz."""
    if comm.rank != 0:
        return None
    t0 = time.perf_counter()
    with comm.tracer.compute("tables"):
        model = NGramModel.from_counts(merged, corpus.vocab, cfg.smoothing)
    if stats is not None and [tuple(d) for d in model.discounts] != stats["discounts"]:
        raise RuntimeError(f"discounts differ: distributed {stats['discounts']}, "
                           f"rank 0 {model.discounts}")
    with comm.tracer.compute("validation"):
        val = model.perplexity(corpus.valid)
    path = os.path.join(run_dir, "model.npz")
    model.save(path)
    tables_s = time.perf_counter() - t0
    for w in model.warnings:
        print(f"minipar: warning: {w}", file=sys.stderr, flush=True)
    lines = [f"model: {model.summary()}",
             f"validation: ppl {val['ppl']:.4f} over {val['tokens']:,} tokens "
             f"({val['oov']:,} OOV; without OOV {val['ppl_without_oov']:.4f})"]
    if cfg.smoothing == "stupid":
        lines.append("note: Stupid Backoff scores do not sum to 1, so that is not a perplexity")
    if not np.isfinite(val["ppl"]):
        lines.append(f"note: --smoothing {cfg.smoothing} gives some validation tokens "
                     f"probability 0 (words or n-grams training never saw); kn and addk do not")
    sample = []
    if cfg.sample_chars:
        sents = model.sample(3, max_len=cfg.sample_chars, temperature=0.8, seed=cfg.seed)
        sample = [corpus.vocab.decode(s) for s in sents]
        lines.append("sample: " + " / ".join(sample))
    summary = {"config": dataclasses.asdict(cfg), "model": "ngram", "ranks": comm.size,
               "order": model.order, "smoothing": cfg.smoothing, "tokens": model.tokens,
               "sentences": model.sentences, "vocab": len(corpus.vocab),
               "val_ppl": val["ppl"], "val_ppl_without_oov": val["ppl_without_oov"],
               "val_tokens": val["tokens"], "discounts": model.discounts,
               "warnings": model.warnings, "tables_s": tables_s, "sample": sample,
               "model_file": path}
    if stats is not None:
        summary["counts_of_counts"] = stats["counts_of_counts"]
    return {"summary": summary, "lines": lines}
