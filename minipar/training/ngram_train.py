"""``python -m minipar.train --model ngram``: a count-based N-gram model trained on P ranks.

    mpiexec -n 4 python -m minipar.train --model ngram --order 5 --tokens word

Reading. With Kneser-Ney on a word-level file, each rank reads its byte range, keeps its
training and validation lines (by their index in the whole file) and the vocabulary is
merged over the ranks (``ngram_read.read_corpus_ranges``). Otherwise every rank builds the
same vocabulary and id stream from the whole corpus (a deterministic function of the text:
no message) and keeps its piece of whole sentences (``split_sentences``: P pieces of about
len/P tokens, so no n-gram crosses a cut). Then:

kn (the default)   the model stays sharded over the ranks, with the code that
                   ``python -m minipar.ngram fit FILE`` runs under mpiexec
                   (ngram_distributed.py, ngram_query.py): the counts go to the owner of
                   their first word, each rank estimates its own grams, the validation
                   sentences are scored by sharded queries (each rank sends the rows its
                   sentences need to their owners and adds nothing itself: rank 0 sums the
                   scores in order), and rank 0 samples by asking the owners token by token.
                   Only to write model.npz (vocabulary and counts) are the counts gathered
                   on rank 0; no rank builds the whole model.
ml, addk, stupid   MapReduce (ngram_mapreduce.py): counts hashed to the owner of their
                   context and summed there, gathered on rank 0, which builds the tables,
                   scores the validation split and samples alone.

Either way every count in model.npz, every validation token's log10 probability and the
sampled sentences are the one-process model's, bit for bit (tests/test_ngram_parallel.py).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from minipar.comm import launch
from minipar.core.errors import ConfigError, DataError
from minipar.data import load_corpus
from minipar.data.corpus import BUILTIN
from minipar.models.ngram_counts import split_sentences
from minipar.models.ngram_lm import NGramModel, summary_line
from minipar.training.ngram_distributed import counts_on_root, estimate_kn
from minipar.training.ngram_mapreduce import check_top_order, gather_counts, parallel_counts
from minipar.training.ngram_query import sharded_perplexity, sharded_sample
from minipar.training.ngram_read import read_corpus_ranges
from minipar.training.run_dir import choose_run_dir, write_summary

__all__ = ["run_ngram"]


def _order(cfg) -> int:
    order = cfg.order if cfg.order is not None else (cfg.context or 4) + 1
    if order < 1:
        raise ConfigError(f"--order must be at least 1, got {order}")
    return order


def _load(cfg, tracer):
    with tracer.compute("read"):
        corpus = load_corpus(cfg.data, cfg.valid, tokens=cfg.tokens or "char",
                             lower=cfg.lower, max_chars=cfg.max_chars)
    if len(corpus.train) == 0:
        raise DataError(f"{corpus.names.get('train', 'data')}: no training tokens to count")
    return corpus


def run_ngram(comm, cfg) -> int:
    """Count, estimate, validate, sample, save, and the run's report."""
    t_start = time.perf_counter()
    # user mistakes go through launch.agree: every rank stops with the same one line
    order = launch.agree(comm, _order, cfg)
    if _in_ranges(cfg):  # a word-level file: each rank reads its byte range
        corpus, header = launch.agree(comm, read_corpus_ranges, comm, cfg.data, cfg.valid,
                                      cfg.lower)
        shard, valid = corpus.train, corpus.valid
    else:  # every rank reads the whole text and takes its share of the sentences
        corpus = launch.agree(comm, _load, cfg, comm.tracer)
        header, eos = corpus.summary(), corpus.vocab.eos_id
        shard, valid = (split_sentences(x, comm.size, eos)[comm.rank]
                        for x in (corpus.train, corpus.valid))
    run_dir = launch.agree(comm, choose_run_dir, comm, cfg.out, "ngram")
    talk = comm.rank == 0 and not cfg.quiet
    how = "sharded model" if cfg.smoothing == "kn" else "MapReduce counting"
    if talk:
        print("\n".join([f"minipar: {comm.size} rank{'s' if comm.size > 1 else ''} "
                         f"({comm.library}); {order}-gram {cfg.smoothing}, {how}",
                         f"data: {header}", f"run directory {run_dir}"]
                        + [f"note: {note}" for note in comm.notes + getattr(cfg, "notes", [])]),
              flush=True)
    run = _sharded_kn if cfg.smoothing == "kn" else _mapreduce
    distinct, table, result = run(comm, cfg, corpus, order, shard, valid, run_dir)
    with comm.phase("report"):
        shards = comm.gather(np.array([len(shard)], dtype=np.int64),
                             np.empty(comm.size, dtype=np.int64))
    files = [os.path.join(run_dir, f) if cfg.trace else None for f in ("trace.json",
                                                                      "timeline.png")]
    rows = comm.report(chrome=files[0], png=files[1], table=talk)
    if comm.rank != 0:
        return 0
    result["summary"].update(
        seconds=time.perf_counter() - t_start, distinct_ngrams=distinct,
        per_rank=[{"rank": r["rank"], "shard_tokens": int(shards[r["rank"]]),
                   "owned_ngrams": table[r["rank"]].tolist(),
                   **{k: r[k] for k in ("comm_s", "compute_s", "wait_s", "bytes_sent",
                                        "bytes_recv", "msgs_sent", "mpi_colls")}}
                  for r in rows])
    write_summary(run_dir, result["summary"])
    print("\n".join(result["lines"] + [f"run directory: {run_dir} (summary.json, model.npz"
                                       f"{', trace.json, timeline.png' if cfg.trace else ''})"]),
          flush=True)
    return 0


def _in_ranges(cfg) -> bool:
    """Whether each rank can read its own byte range: Kneser-Ney on word tokens of a file,
    all of it (--max-chars takes the first lines, which only a whole read knows)."""
    return (cfg.smoothing == "kn" and cfg.tokens == "word" and cfg.max_chars is None
            and cfg.data not in (None, BUILTIN))


def _sharded_kn(comm, cfg, corpus, order, shard, valid, run_dir):
    vocab = corpus.vocab
    t0 = time.perf_counter()
    model, owned, uni, tot, sizes = estimate_kn(comm, shard, len(vocab), order, vocab.bos_id,
                                                vocab.eos_id)
    tables_s = time.perf_counter() - t0
    val = sharded_perplexity(comm, model, valid, vocab)
    sents = (sharded_sample(comm, model, vocab, 3, max_len=cfg.sample_chars, temperature=0.8,
                            seed=cfg.seed) if cfg.sample_chars else [])
    merged, table = counts_on_root(comm, model, owned, uni, int(tot[0]), int(tot[1]))

    def finish():  # on rank 0, through launch.agree: a failure stops every rank
        if comm.rank != 0:
            return None
        path = os.path.join(run_dir, "model.npz")
        NGramModel.save_counts(path, merged, vocab, "kn")
        name = summary_line(order, "kn", vocab.kind, len(vocab), sizes, model.discounts)
        result = _result(cfg, comm, corpus, name, model, val, sents, path, tables_s,
                         int(tot[0]), int(tot[1]))
        result["summary"]["counts_of_counts"] = model.t[:, 1:].tolist()
        return result

    return sizes, table, launch.agree(comm, finish)


def _mapreduce(comm, cfg, corpus, order, shard, valid, run_dir):
    vocab = corpus.vocab
    part = parallel_counts(comm, corpus.train, order, vocab.bos_id, vocab.eos_id)
    launch.agree(comm, check_top_order, part["ngrams"], order)
    merged, table = gather_counts(comm, part["owned"], part["sentences"], part["tokens"])
    return part["ngrams"], table, launch.agree(comm, _on_root, comm, cfg, corpus, merged,
                                               run_dir)


def _on_root(comm, cfg, corpus, merged, run_dir):
    """The MapReduce run's end on rank 0: tables, validation, model.npz, a sample."""
    result = None
    vocab = corpus.vocab
    if comm.rank == 0:
        t0 = time.perf_counter()
        with comm.tracer.compute("tables"):
            model = NGramModel.from_counts(merged, vocab, cfg.smoothing)
        with comm.tracer.compute("validation"):
            val = model.perplexity(corpus.valid)
        path = os.path.join(run_dir, "model.npz")
        model.save(path)
        sents = (model.sample(3, max_len=cfg.sample_chars, temperature=0.8, seed=cfg.seed)
                 if cfg.sample_chars else [])
        result = _result(cfg, comm, corpus, model.summary(), model, val, sents, path,
                         time.perf_counter() - t0, model.sentences, model.tokens)
    return result


def _result(cfg, comm, corpus, name, model, val, sents, path, tables_s, sentences, tokens):
    """The lines a run prints at its end and its summary.json, on rank 0."""
    for w in model.warnings:
        print(f"minipar: warning: {w}", file=sys.stderr, flush=True)
    lines = [f"model: {name}",
             f"validation: ppl {val['ppl']:.4f} over {val['tokens']:,} tokens "
             f"({val['oov']:,} OOV; without OOV {val['ppl_without_oov']:.4f})"]
    if cfg.smoothing == "stupid":
        lines.append("note: Stupid Backoff scores do not sum to 1, so that is not a perplexity")
    if not np.isfinite(val["ppl"]):
        lines.append(f"note: --smoothing {cfg.smoothing} gives some validation tokens "
                     f"probability 0 (words or n-grams training never saw); kn and addk do not")
    sample = [corpus.vocab.decode(s) for s in sents]
    if sample:
        lines.append("sample: " + " / ".join(sample))
    summary = {"config": dataclasses.asdict(cfg), "model": "ngram", "ranks": comm.size,
               "order": model.order, "smoothing": cfg.smoothing, "tokens": tokens,
               "sentences": sentences, "vocab": len(corpus.vocab),
               "val_ppl": val["ppl"], "val_ppl_without_oov": val["ppl_without_oov"],
               "val_tokens": val["tokens"], "discounts": model.discounts,
               "warnings": model.warnings, "tables_s": tables_s, "sample": sample,
               "model_file": path}
    return {"summary": summary, "lines": lines}
