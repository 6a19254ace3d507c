"""Count-based N-gram language models from the command line.

    python -m minipar.ngram fit [TRAIN] --order 5 --smoothing kn [--out M.npz] [--arpa M.arpa]
                                [--test TEST] [--tokens word|char]
    mpiexec -n 2 python -m minipar.ngram fit ...      # the counting shared out over the ranks
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
import sys
import time

from minipar.comm import launch
from minipar.comm.world import launched_ranks
from minipar.data.corpus import load_text_lines, split_lines
from minipar.data.tokenize import Vocab
from minipar.core.errors import ConfigError, UserError
from minipar.models.ngram_lm import SMOOTHINGS, NGramModel, load_model
from minipar.training.ngram_mapreduce import fit_model

_SPLITS = {"builtin:train": 0, "builtin:valid": 1, "builtin:test": 2}


class _Progress:
    """One line on stderr per stage, with the time since the start (silent with --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet, self.t0 = quiet, time.perf_counter()

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
    lines, name = _lines(a.train or "builtin:train", a.lower, "training")
    say(f"read {name}: {len(lines):,} lines")
    text = "\n".join(lines) + "\n"
    vocab = Vocab.build(text, a.tokens, a.lower, a.min_count, a.max_vocab, name=name)
    ids = vocab.encode(text, normalized=True)
    say(f"{len(ids):,} {a.tokens} tokens, vocabulary {len(vocab):,}; counting 1..{a.order}-grams")
    return ids, vocab, name


def cmd_fit(a) -> int:
    """One process: the plain serial path."""
    say = _Progress(a.quiet)
    ids, vocab, name = _prepare(a, say)
    model = NGramModel.fit(ids, vocab, a.order, a.smoothing, k=a.k, alpha=a.alpha)
    return _report(a, model, vocab, name, say)


def fit_on_ranks(argv, state) -> int:
    """Under mpiexec: every rank reads the text and counts its share (MapReduce, as
    ``minipar.train --model ngram``); rank 0 builds the model and writes every file once."""
    a = _parser().parse_args(argv)
    comm = launch.start(state)
    say = _Progress(a.quiet or comm.rank != 0)
    ids, vocab, name = launch.agree(comm, _prepare, a, say)
    say(f"counting on {comm.size} ranks")
    model = fit_model(comm, ids, vocab, a.order, a.smoothing, k=a.k, alpha=a.alpha)
    if comm.rank != 0:
        return 0
    return _report(a, model, vocab, name, say)


def _report(a, model, vocab, name, say) -> int:
    """Write the model's files, score the test text, print the summary."""
    test = a.test or ("builtin:test" if a.train is None else None)
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
        say(f"wrote {a.arpa}")
    if test:
        tids, tname = _ids(test, vocab, "test")
        out["test"] = dict(model.perplexity(tids), name=tname)
    if a.json:
        print(json.dumps(out))
    else:
        print(f"trained {model.summary()}")
        print(f"on {name}: {model.tokens:,} tokens, {model.sentences:,} sentences")
        if test:
            print(_ppl_line(out["test"]["name"], out["test"]))
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


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "fit" and a.order < 1:
            raise ConfigError(f"--order must be at least 1, got {a.order}")
        if a.cmd == "sample" and (a.n < 1 or a.max_len < 1):
            raise ConfigError("-n and --max-len must be at least 1")
        if a.cmd == "fit" and launched_ranks(os.environ)[0] > 1:
            return launch.run(fit_on_ranks, argv)
        return {"fit": cmd_fit, "ppl": cmd_ppl, "sample": cmd_sample}[a.cmd](a)
    except UserError as exc:
        if launch.launcher_rank() == 0:  # under mpiexec every rank found it: say it once
            launch.say_error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
