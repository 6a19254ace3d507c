"""N-gram counting speed (order-5 modified KN on 10^6 words), or --synthetic: KN vs exp(H).

    python -m minipar.bench ngram [--words 1000000] [--order 5] [--repeat 3] [--json]
    python -m minipar.bench ngram --synthetic [--train 1000000] [--test 200000] [--json]

Speed. Text: ``--data PATH``, or by default the Python standard library's own source files
(``*.py`` under the stdlib directory, sorted by path, site-packages excluded), read until
``--words`` whitespace-separated words: real, Zipf-like text with ~10^5 word types that is
on every machine (and the same for one Python version). It is normalised and encoded as
words (one sentence per line); tokens = words + one </s> per line. Timed: counting all
1..N-grams (``count_ngrams``) and building the interpolated modified Kneser-Ney tables
(``NGramModel.from_counts``); reading and encoding are reported apart. ``seconds`` is the
median over ``--repeat`` runs, ``tokens_per_s`` = tokens / seconds.

Synthetic. A seeded order-2 Markov source over V = 20 symbols (``MarkovSource``, Dirichlet
0.5 rows) gives ``--train`` training and ``--test`` test symbols; an order-3 KN model is fitted
and its test perplexity over the symbols (the single closing </s> left out) is compared with
the source's exp(entropy rate), the floor no model can beat.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import sysconfig
import time

from minipar.data.corpus import read_text
from minipar.data.synthetic import MarkovSource
from minipar.data.fast_text import normalize_bytes
from minipar.data.word_keys import word_vocab_and_ids
from minipar.core.errors import UserError
from minipar.models.ngram_lm import NGramModel
from minipar.models.ngram_counts import count_ngrams


def stdlib_text(words: int) -> tuple[str, str]:
    """Source text of the first stdlib files (sorted paths) holding ``words`` words."""
    root = sysconfig.get_paths()["stdlib"]
    files = sorted(f for f in glob.glob(os.path.join(root, "**", "*.py"), recursive=True)
                   if "site-packages" not in f.split(os.sep))
    parts, n = [], 0
    for path in files:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        parts.append(text)
        n += len(text.split())
        if n >= words:
            break
    if n < words:
        raise UserError(f"the standard library in {root} has only {n:,} words; use --data")
    return "\n".join(parts), f"Python {sys.version.split()[0]} stdlib sources ({len(parts)} files)"


def run_speed(a) -> dict:
    t0 = time.perf_counter()
    if a.data:
        text, source = read_text(a.data), a.data
    else:
        text, source = stdlib_text(a.words)
    data = normalize_bytes(text.encode("utf-8"))
    vocab, ids = word_vocab_and_ids(data, name=source)  # as python -m minipar.ngram fit
    prep = time.perf_counter() - t0
    count_s, smooth_s = [], []
    for _ in range(a.repeat):
        t = time.perf_counter()
        counts = count_ngrams(ids, a.order)
        t1 = time.perf_counter()
        model = NGramModel.from_counts(counts, vocab, "kn")
        t2 = time.perf_counter()
        count_s.append(t1 - t)
        smooth_s.append(t2 - t1)
    total = [c + s for c, s in zip(count_s, smooth_s)]
    seconds = statistics.median(total)
    out = {"benchmark": "ngram", "source": source, "order": a.order, "smoothing": "kn",
           "words": int((ids != vocab.eos_id).sum()), "tokens": int(len(ids)),
           "sentences": counts.sentences, "vocab": len(vocab),
           "ngrams": [len(g) for g in model.grams], "read_encode_seconds": round(prep, 4),
           "count_seconds": round(statistics.median(count_s), 4),
           "smooth_seconds": round(statistics.median(smooth_s), 4),
           "seconds": round(seconds, 4), "tokens_per_s": round(len(ids) / seconds),
           "repeat": a.repeat}
    if a.arpa:
        t = time.perf_counter()
        model.write_arpa(a.arpa)
        out["arpa_seconds"] = round(time.perf_counter() - t, 4)
        out["arpa_bytes"] = os.path.getsize(a.arpa)
    return out


def run_synthetic(a) -> dict:
    src = MarkovSource(order=2, vocab_size=20, seed=a.seed, concentration=0.5)
    c = src.corpus(a.train, 0, a.test, seed=a.seed)
    t = time.perf_counter()
    model = NGramModel.fit(c.train, c.vocab, order=a.order, smoothing="kn")
    fit_s = time.perf_counter() - t
    lp = model.log10probs(c.test)[:-1]  # the symbols; the one closing </s> left out
    ppl = float(10 ** (-lp.mean()))
    floor = src.perplexity()
    return {"benchmark": "ngram-synthetic", "source": "markov order 2, V 20, seed "
            f"{a.seed}, Dirichlet 0.5", "train_tokens": a.train, "test_tokens": a.test,
            "order": a.order, "smoothing": "kn", "entropy_rate_nats": src.entropy_rate(),
            "floor_ppl": floor, "test_ppl": ppl, "ratio": ppl / floor,
            "fit_seconds": round(fit_s, 4)}


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m minipar.bench ngram", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true", help="KN on the Markov source vs exp(H)")
    p.add_argument("--data", help="text file for the speed run (default: stdlib sources)")
    p.add_argument("--words", type=int, default=1_000_000, help="words to read (10^6)")
    p.add_argument("--order", type=int, default=None, help="N (5; --synthetic: 3)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs, median taken (3)")
    p.add_argument("--arpa", help="also time writing the model to this ARPA file")
    p.add_argument("--train", type=int, default=1_000_000, help="--synthetic training symbols")
    p.add_argument("--test", type=int, default=200_000, help="--synthetic test symbols")
    p.add_argument("--seed", type=int, default=0, help="--synthetic source seed (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.order is None:
        a.order = 3 if a.synthetic else 5
    if a.order < 1 or a.repeat < 1 or a.words < 1 or a.train < 1 or a.test < 1:
        raise UserError("--order, --repeat, --words, --train and --test must be positive")
    return a


def main(argv=None) -> int:
    try:
        a = _parse(argv)
        out = run_synthetic(a) if a.synthetic else run_speed(a)
    except UserError as exc:
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(out))
    elif a.synthetic:
        print(f"source: {out['source']}; entropy rate {out['entropy_rate_nats']:.5f} nats, "
              f"exp(H) = {out['floor_ppl']:.4f}")
        print(f"order-{a.order} KN on {a.train:,} symbols: test ppl {out['test_ppl']:.4f} on "
              f"{a.test:,} symbols = {100 * (out['ratio'] - 1):+.2f}% above the floor "
              f"(fit {out['fit_seconds']:.2f} s)")
    else:
        print(f"{out['source']}: {out['words']:,} words, {out['tokens']:,} tokens "
              f"({out['sentences']:,} lines), vocabulary {out['vocab']:,}")
        print("n-grams " + " ".join(f"{k + 1}:{n:,}" for k, n in enumerate(out["ngrams"])))
        print(f"order-{a.order} modified KN: count {out['count_seconds']:.3f} s + smooth "
              f"{out['smooth_seconds']:.3f} s = {out['seconds']:.3f} s (median of {a.repeat}) "
              f"-> {out['tokens_per_s']:,.0f} tokens/s; "
              f"read+encode {out['read_encode_seconds']:.2f} s")
        if "arpa_seconds" in out:
            print(f"ARPA: {out['arpa_bytes'] / 1e6:.1f} MB in {out['arpa_seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
