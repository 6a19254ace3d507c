"""Count-based N-gram language models from the command line.

    python -m minipar.ngram fit [TRAIN] --order 5 --smoothing kn [--out M.npz] [--arpa M.arpa]
                                [--test TEST] [--tokens word|char]
    mpiexec -n 2 python -m minipar.ngram fit ...      # shared out over the ranks (docs/ngram.md:
                                                      # Kneser-Ney stays sharded, every step)
    python -m minipar.ngram ppl MODEL_OR_ARPA TEST [--tokens word|char]
    python -m minipar.ngram sample MODEL_OR_ARPA [-n 5] [--temperature 1.0] [--seed 0]

TRAIN and TEST are UTF-8 text files, one sentence per line, or ``builtin:train``,
``builtin:valid``, ``builtin:test`` for a split of the built-in corpus. Without TRAIN, ``fit``
trains on builtin:train and reports perplexity on builtin:test. A model is a native .npz
file (vocabulary + counts) or an ARPA file, told apart by content. Perplexity counts every
word and each end of sentence </s>; words outside the vocabulary are scored as <unk> and
also reported separately (see docs/ngram.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


from minipar.comm import launch
from minipar.comm.world import launched_ranks
from minipar.data.corpus import load_text_lines, split_lines
from minipar.data.files import check_file
from minipar.data.fast_text import read_normalized
from minipar.data.tokenize import Vocab
from minipar.data.word_keys import word_vocab_and_ids
from minipar.core.errors import ConfigError, UserError
from minipar.core.launcher import launcher_rank
from minipar.models.ngram_lm import SMOOTHINGS, NGramModel, load_model, summary_line
from minipar.models.arpa import SPACE
from minipar.models.ngram_counts import count_ngrams, split_sentences
from minipar.training.config import no_effect
from minipar.training.ngram_distributed import (CHUNK_TOKENS, counts_on_root, estimate_kn,
                                               write_arpa_ranks)
from minipar.training.ngram_mapreduce import fit_model
from minipar.training.ngram_query import sharded_perplexity, sharded_sample
from minipar.training.ngram_read import parallel_word_vocab, read_lines_range

_SPLITS = {"builtin:train": 0, "builtin:valid": 1, "builtin:test": 2}


class _Progress:
    """One line on stderr per stage, with the time since the start (silent with --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet, self.t0 = quiet, time.perf_counter()
        self.stages, self.peak_mb, self._last = {}, {}, self.t0

    def stage(self, name: str) -> None:
        """Seconds since the previous stage ended, and the peak RSS so far (MB), kept under
        ``name`` (--json "stages", "peak_mb")."""
        now = time.perf_counter()
        self.stages[name] = round(self.stages.get(name, 0.0) + now - self._last, 4)
        self.peak_mb[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self._last = now

    def __call__(self, what: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.2f} s] {what}", file=sys.stderr, flush=True)


def _lines(spec: str, lower: bool, what: str):
    """Normalised lines and a display name for a file or a built-in split."""
    if spec in _SPLITS:
        lines, name = load_text_lines(None, lower)
        return split_lines(lines, name)[_SPLITS[spec]], f"{name} ({spec.split(':')[1]} split)"
    if spec.startswith("builtin"):
        raise ConfigError(f"{spec!r}: use builtin:train, builtin:valid or builtin:test")
    return load_text_lines(spec, lower, what)


def _ids(spec: str, vocab: Vocab, what: str):
    lines, name = _lines(spec, vocab.lower, what)
    return vocab.encode("\n".join(lines) + "\n", normalized=True), name


def _ppl_line(name: str, r: dict) -> str:
    return (f"{name}: {r['tokens']:,} tokens ({r['sentences']:,} sentences, {r['oov']:,} OOV) "
            f"log10prob {r['log10prob']:.2f} ppl {r['ppl']:.4f} "
            f"(without OOV {r['ppl_without_oov']:.4f})")


def _prepare(a, say):
    """(ids, vocabulary, name) of the training text."""
    spec = a.train or "builtin:train"
    if spec in _SPLITS or spec.startswith("builtin"):
        lines, name = _lines(spec, a.lower, "training")
        text = ("\n".join(lines) + "\n").encode("utf-8")
    else:  # a file: its normalised bytes, no list of lines
        name, text = spec, read_normalized(spec, a.lower, "training")
    say.stage("read")
    lines = text.count(b"\n")
    say(f"read {name}: {lines:,} lines")
    if a.tokens == "word":
        vocab, ids = word_vocab_and_ids(text, a.lower, a.min_count, a.max_vocab, name=name)
    else:
        text = text.decode("utf-8")
        vocab = Vocab.build(text, a.tokens, a.lower, a.min_count, a.max_vocab, name=name)
        ids = vocab.encode(text, normalized=True)
    say.stage("vocab")
    say(f"{len(ids):,} {a.tokens} tokens, vocabulary {len(vocab):,}; counting 1..{a.order}-grams")
    return ids, vocab, name


def _test_spec(a):
    """The text --test names, or builtin:test when training on the built-in corpus."""
    return a.test or ("builtin:test" if a.train is None else None)


def _queries(a) -> bool:
    """Whether the model is asked anything after it is built (a test text, a sample):
    if not, its index can go before the file is written."""
    return bool(_test_spec(a) or a.sample)


def cmd_fit(a) -> int:
    """One process: the plain serial path."""
    say = _Progress(a.quiet)
    ids, vocab, name = _prepare(a, say)
    counts = count_ngrams(ids, a.order, vocab.bos_id, vocab.eos_id)
    del ids  # 8 bytes a token, not needed past counting
    say.stage("count")
    model = NGramModel.from_counts(counts, vocab, a.smoothing, k=a.k, alpha=a.alpha,
                                   stage=say.stage, keep_counts=bool(a.out),
                                   queries=_queries(a))
    say.stage("estimate")
    return _report(a, model, vocab, name, say)


def fit_on_ranks(argv, state) -> int:
    """Under mpiexec. Kneser-Ney: the model stays sharded, as for ``minipar.train --model
    ngram`` (``fit_kn_on_ranks``). ML, add-k, Stupid Backoff: every rank reads the text and
    counts its share (MapReduce, as the trainer), and rank 0 builds the model."""
    a = _parser().parse_args(argv)
    comm = launch.start(state)
    say = _Progress(a.quiet or comm.rank != 0)
    if a.smoothing == "kn":
        return fit_kn_on_ranks(comm, a, say)
    ids, vocab, name = launch.agree(comm, _prepare, a, say)
    say(f"counting on {comm.size} ranks")
    model = fit_model(comm, ids, vocab, a.order, a.smoothing, k=a.k, alpha=a.alpha)
    _trace(comm, a)
    if comm.rank != 0:
        return 0
    return _report(a, model, vocab, name, say)


def _trace(comm, a) -> None:
    """``--trace DIR``: the job's trace.json and timeline.png, and the per-rank table (on
    stderr, so that --json stays one object on stdout). Every rank takes part."""
    if not a.trace:
        return
    if comm.rank == 0:
        os.makedirs(a.trace, exist_ok=True)
    comm.report(chrome=os.path.join(a.trace, "trace.json"),
                png=os.path.join(a.trace, "timeline.png"), table=not a.quiet, stream=sys.stderr)


def _read_on_ranks(comm, a, say):
    """(vocabulary, this rank's sentences as ids, name). A word-level file: each rank reads
    its byte range and the vocabulary is merged (ngram_read.py); otherwise every rank
    prepares the whole text, as one process does, and keeps its share of the sentences."""
    if a.train and a.train not in _SPLITS and a.tokens == "word":
        text, nbytes = launch.agree(comm, read_lines_range, comm, a.train, a.lower)
        say.stage("read")
        say(f"read {a.train}: {nbytes:,} bytes on {comm.size} ranks")
        vocab, ids = launch.agree(comm, parallel_word_vocab, comm, text, a.lower, a.min_count,
                                  a.max_vocab, a.train)
        say.stage("vocab")
        return vocab, ids, a.train
    ids, vocab, name = launch.agree(comm, _prepare, a, say)
    return vocab, split_sentences(ids, comm.size, vocab.eos_id)[comm.rank], name


def _test_ids(comm, a, vocab, spec: str):
    """This rank's share of the test sentences (a file: its byte range), and their name."""
    if spec in _SPLITS:
        tids, name = launch.agree(comm, _ids, spec, vocab, "test")
        return split_sentences(tids, comm.size, vocab.eos_id)[comm.rank], name
    test, _ = launch.agree(comm, read_lines_range, comm, spec, a.lower, "test")
    return vocab.encode(test.decode("utf-8"), normalized=True), spec


def _save_on_root(comm, a, merged, vocab) -> None:
    if comm.rank == 0:  # k and alpha kept as one process keeps them (KN does not use them)
        NGramModel.save_counts(a.out, merged, vocab, "kn", k=a.k, alpha=a.alpha)


def fit_kn_on_ranks(comm, a, say) -> int:
    """Read, count, estimate, score, sample and write the ARPA file with P ranks, the model
    sharded over them (ngram_distributed.py, ngram_query.py); for ``--out`` the counts are
    gathered on rank 0, which writes them without building the tables."""
    vocab, ids, name = _read_on_ranks(comm, a, say)
    bos, V = vocab.bos_id, len(vocab)
    say(f"vocabulary {V:,}; counting 1..{a.order}-grams on {comm.size} ranks")
    model, owned, uni, tot, sizes = estimate_kn(comm, ids, V, a.order, bos, vocab.eos_id,
                                                say.stage, a.chunk_tokens,
                                                keep_counts=bool(a.out),  # for model.npz
                                                queries=_queries(a))
    del ids
    say(f"{int(tot[1]):,} {a.tokens} tokens")
    summary = summary_line(a.order, "kn", a.tokens, V, sizes, model.discounts)
    say("smoothed: " + summary)
    for w in model.warnings if comm.rank == 0 else []:
        print(f"minipar: warning: {w}", file=sys.stderr)
    if a.arpa:
        names = (vocab.joined() if a.tokens == "word" else  # word names: bytes, no strs
                 [SPACE if t == " " else t for t in vocab.tokens])
        write_arpa_ranks(comm, a.arpa, names, model, bos, progress=say)
        say.stage("write")
        say(f"wrote {a.arpa}")
    out = {"train": name, "tokens": int(tot[1]), "sentences": int(tot[0]),
           "order": a.order, "smoothing": "kn", "vocab": V, "ngrams": sizes,
           "discounts": model.discounts, "warnings": model.warnings, "ranks": comm.size,
           "stages": say.stages, "peak_mb": say.peak_mb}
    test = _test_spec(a)
    if test:  # scored by the sharded model, no rank holds it all
        tids, tname = _test_ids(comm, a, vocab, test)
        r = sharded_perplexity(comm, model, tids, vocab)
        if comm.rank == 0:
            out["test"] = dict(r, name=tname)
        say.stage("test")
    if a.sample:  # drawn from the sharded model: rank 0 asks the owners, token by token
        sents = sharded_sample(comm, model, vocab, a.sample, seed=a.seed)
        if comm.rank == 0:
            out["sample"] = [vocab.decode(x) for x in sents]
        say.stage("sample")
    out["stages_per_rank"] = comm.gather_obj(say.stages)
    out["peak_mb_per_rank"] = comm.gather_obj(say.peak_mb)
    if a.out:  # the same on every rank: a collective follows
        merged, _ = counts_on_root(comm, model, owned, uni, out["sentences"], out["tokens"])
        launch.agree(comm, _save_on_root, comm, a, merged, vocab)
        say(f"wrote {a.out}")
    _trace(comm, a)
    if comm.rank != 0:
        return 0
    if a.json:
        print(json.dumps(out))
    else:
        print(f"trained {summary}\non {name}: {out['tokens']:,} tokens, "
              f"{out['sentences']:,} sentences ({comm.size} ranks)")
        if test:
            print(_ppl_line(out["test"]["name"], out["test"]))
        _print_sample(out)
    return 0


def _print_sample(out: dict) -> None:
    for text in out.get("sample", []):
        print("sample: " + text.strip().replace("\n", " / "))


def _report(a, model, vocab, name, say) -> int:
    """Write the model's files, score the test text, print the summary."""
    test = _test_spec(a)
    say("smoothed: " + model.summary())
    out = {"train": name, "tokens": model.tokens, "sentences": model.sentences,
           "order": a.order, "smoothing": a.smoothing, "vocab": len(vocab),
           "ngrams": [len(g) for g in model.grams], "discounts": model.discounts,
           "warnings": model.warnings}
    for w in model.warnings:
        print(f"minipar: warning: {w}", file=sys.stderr)
    if a.out:
        model.save(a.out)
        say(f"wrote {a.out}")
    if a.arpa:
        model.write_arpa(a.arpa, progress=say)
        say.stage("write")
        say(f"wrote {a.arpa}")
    out["stages"], out["peak_mb"] = say.stages, say.peak_mb
    if test:
        tids, tname = _ids(test, vocab, "test")
        out["test"] = dict(model.perplexity(tids), name=tname)
    if a.sample:
        out["sample"] = [vocab.decode(x) for x in model.sample(a.sample, seed=a.seed)]
    if a.json:
        print(json.dumps(out))
    else:
        print(f"trained {model.summary()}")
        print(f"on {name}: {model.tokens:,} tokens, {model.sentences:,} sentences")
        if test:
            print(_ppl_line(out["test"]["name"], out["test"]))
        _print_sample(out)
    return 0


def cmd_ppl(a) -> int:
    say = _Progress(a.quiet)
    model = load_model(a.model, tokens=a.tokens, lower=a.lower)
    say(f"loaded {a.model}: {model.summary()}")
    ids, name = _ids(a.test, model.vocab, "test")
    r = model.perplexity(ids)
    print(json.dumps(dict(r, name=name)) if a.json else _ppl_line(name, r))
    return 0


def cmd_sample(a) -> int:
    model = load_model(a.model, tokens=a.tokens, lower=a.lower)
    sents = model.sample(a.n, a.max_len, a.temperature, a.seed)
    for s in sents:
        print(model.vocab.decode(s))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minipar.ngram", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="count and smooth a model; optional held-out perplexity",
                       description="Fit an N-gram model. Each line of TRAIN is a sentence.")
    f.add_argument("train", nargs="?", help="training text (default builtin:train)")
    f.add_argument("--order", type=int, default=5, help="N, the longest n-gram (5)")
    f.add_argument("--smoothing", choices=SMOOTHINGS, default="kn",
                   help="kn: interpolated modified Kneser-Ney (default); ml: maximum "
                        "likelihood; addk: add-k; stupid: Stupid Backoff (not normalised)")
    f.add_argument("--k", type=float, default=1.0, help="k of add-k (1.0)")
    f.add_argument("--alpha", type=float, default=0.4, help="Stupid Backoff factor (0.4)")
    f.add_argument("--tokens", choices=("word", "char"), default="word",
                   help="word (split on spaces) or char tokens (word)")
    f.add_argument("--lower", action="store_true", help="lower-case the text first")
    f.add_argument("--min-count", type=int, default=1,
                   help="rarer tokens become <unk> in training too (1: keep all)")
    f.add_argument("--max-vocab", type=int, default=None, help="keep at most this many ids")
    f.add_argument("--out", help="write the native model (.npz)")
    f.add_argument("--arpa", help="write the model as an ARPA file (kn and ml)")
    f.add_argument("--test", help="held-out text to report perplexity on")
    f.add_argument("--sample", type=int, default=0, metavar="N",
                   help="also draw N sentences from the model (under mpiexec from the "
                        "sharded model, asking each gram's owner)")
    f.add_argument("--seed", type=int, default=0, help="seed of --sample (0)")
    f.add_argument("--chunk-tokens", type=int, default=CHUNK_TOKENS, metavar="N",
                   help="under mpiexec: count and send a rank's sentences in rounds of about "
                        f"N tokens, which bounds counting's memory ({CHUNK_TOKENS:,})")
    f.add_argument("--trace", metavar="DIR",
                   help="under mpiexec: write DIR/trace.json and DIR/timeline.png (every "
                        "rank's messages and stages) and print the per-rank table")
    q = sub.add_parser("ppl", help="perplexity of a model on a text",
                       description="Perplexity of MODEL (.npz or ARPA) on TEST.")
    q.add_argument("model", help="native .npz model or ARPA file")
    q.add_argument("test", help="text file or builtin:test / builtin:valid")
    q.add_argument("--tokens", choices=("word", "char"), default=None,
                   help="how to read an ARPA model's tokens (default word; a native model "
                        "knows its own)")
    q.add_argument("--lower", action="store_true", help="lower-case the text (ARPA models)")
    for cmd in (f, q):
        cmd.add_argument("--json", action="store_true", help="print one JSON object")
        cmd.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s = sub.add_parser("sample", help="generate sentences from a model")
    s.add_argument("model", help="native .npz model or ARPA file")
    s.add_argument("-n", type=int, default=5, help="number of sentences (5)")
    s.add_argument("--max-len", type=int, default=100, help="tokens per sentence at most (100)")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="p^(1/T) renormalised; 0 picks the likeliest token (1.0)")
    s.add_argument("--seed", type=int, default=0, help="random seed (0)")
    s.add_argument("--tokens", choices=("word", "char"), default=None, help="as for ppl")
    s.add_argument("--lower", action="store_true", help="as for ppl")
    return p


def _check_outputs(*paths) -> None:
    """Refuse, before any work, an output file whose folder is missing or not writable."""
    for path in paths:
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise ConfigError(f"{path}: is a directory; give a file name to write")
        if not os.path.isdir(folder):
            raise ConfigError(f"{path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{path}: the folder {folder} is not writable")


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "fit" and a.order < 1:
            raise ConfigError(f"--order must be at least 1, got {a.order}")
        if a.cmd == "fit" and a.sample < 0:
            raise ConfigError(f"--sample must be 0 or more sentences, got {a.sample}")
        if a.cmd == "fit" and a.chunk_tokens < 1:
            raise ConfigError(f"--chunk-tokens must be at least 1, got {a.chunk_tokens}")
        if a.cmd == "fit":
            _check_outputs(a.out, a.arpa)
            if a.test and not a.test.startswith("builtin"):
                check_file(a.test, "test")  # before the work, not after it
        if a.cmd == "sample" and (a.n < 1 or a.max_len < 1):
            raise ConfigError("-n and --max-len must be at least 1")
        if a.cmd == "fit" and launcher_rank() == 0:  # an option that would be ignored: say so
            for flag, value, default, where, used in (
                    ("--k", a.k, 1.0, "--smoothing addk", a.smoothing == "addk"),
                    ("--alpha", a.alpha, 0.4, "--smoothing stupid", a.smoothing == "stupid"),
                    ("--seed", a.seed, 0, "--sample N", a.sample > 0)):
                if value != default and not used:
                    print(f"minipar: note: {no_effect(flag, where)}", file=sys.stderr,
                          flush=True)
        if a.cmd == "fit" and launched_ranks(os.environ)[0] > 1:
            return launch.run(fit_on_ranks, argv)
        if a.cmd == "fit" and a.trace:
            raise ConfigError("--trace shows messages between ranks: run under mpiexec -n P")
        return {"fit": cmd_fit, "ppl": cmd_ppl, "sample": cmd_sample}[a.cmd](a)
    except UserError as exc:
        if launcher_rank() == 0:  # under mpiexec every rank found it: say it once
            launch.say_error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
