"""Sample text from a trained run: ``python -m minipar.generate RUN_DIR``.

    python -m minipar.generate runs/lstm-20250101-120000 --chars 300 --temperature 0.8
    python -m minipar.generate runs/ngram-20250101-120000 --prompt "def " --seed 3

RUN_DIR is what ``python -m minipar.train`` left behind:

- a neural run (``--model lstm`` or ``mlp``): its latest checkpoint (``checkpoint/LATEST``,
  checksums verified) holds the parameters, the vocabulary and the training configuration;
  the model is rebuilt with the same options and the parameters are loaded into it.
- an N-gram run (``--model ngram``): ``model.npz`` (vocabulary and counts; the tables are
  recomputed on load). A model file (``.npz`` or ARPA) can be given instead of a directory.

Each token is drawn from the model's next-token distribution p sharpened by a temperature T,

    q(w) = p(w)^(1/T) / sum_x p(x)^(1/T)          (T = 0: the most likely token)

with ``<s>`` (never predicted) left out, and for an N-gram model ``<unk>`` too (a count
model gives it only the backoff floor); the same ``--seed`` gives the same text.
``--prompt`` is read with the run's tokenizer and the text continues it. For an N-gram
model the history is the current sentence: after each ``</s>`` a new sentence starts from
``<s>``, as in training.
"""

from __future__ import annotations

import argparse
import sys

from minipar.core.errors import UserError
from minipar.training.saved_run import generate_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minipar.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR",
                   help="run directory of python -m minipar.train (or an N-gram model file)")
    p.add_argument("--chars", type=int, default=200, metavar="N",
                   help="tokens to generate: characters for a char-level model, words for a "
                        "word-level one (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="T: p^(1/T) renormalised; below 1 sharper, 0 the likeliest token "
                        "(default 1.0)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--prompt", default=None, metavar="TEXT",
                   help="text to continue (default: 'The' for a neural run; an N-gram "
                        "starts a sentence); --prompt '' starts after a line end")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        text = generate_text(a.run, a.chars, a.temperature, a.seed, a.prompt)
    except UserError as exc:
        if a.debug:
            raise
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
