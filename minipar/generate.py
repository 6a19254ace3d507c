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
import dataclasses
import os
import sys

from minipar.errors import CheckpointError, ConfigError, UserError

MODEL_FILE = "model.npz"


def find_run(path: str) -> tuple[str, str]:
    """(kind, path): ``("file", model file)``, ``("ngram", its model.npz)`` or
    ``("neural", run directory)``."""
    if os.path.isfile(path):
        return "file", path
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: no such run directory")
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return "ngram", os.path.join(path, MODEL_FILE)
    if os.path.isdir(os.path.join(path, "checkpoint")):
        return "neural", path
    raise CheckpointError(f"{path}: not a run directory (neither {MODEL_FILE} of an N-gram "
                          f"run nor checkpoint/ of a neural run is in it)")


def load_neural(run_dir: str):
    """(task, model, vocab) rebuilt from the run's latest checkpoint, on the CPU."""
    from minipar import checkpoint
    from minipar.data.tokenize import Vocab
    from minipar.tasks import TaskConfig, default_config, get_task

    params, _, meta, _ = checkpoint.load(run_dir)
    try:
        kind, conf, vocab = meta["model"], dict(meta["config"]), meta["vocab"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{run_dir}: checkpoint metadata lacks {exc}") from None
    if kind not in ("lstm", "mlp"):
        raise ConfigError(f"{run_dir}: a {kind!r} run is not a language model; generate "
                          f"samples from lstm, mlp and ngram runs")
    vocab = Vocab.from_dict(vocab, name=run_dir)
    # The same options as training (train_setup.task_config): the model's defaults,
    # overridden by whatever the run was given.
    names = {f.name for f in dataclasses.fields(TaskConfig)}
    tcfg = default_config(kind, **{k: v for k, v in conf.items()
                                   if k in names and v is not None and k != "model"})
    task = get_task(kind)
    model = task.build_model(tcfg, len(vocab))
    model.load_state_dict(params)  # a misfit is one CheckpointError line
    model.eval()
    return task, model, vocab


def ngram_text(model, n: int, temperature: float = 1.0, seed: int = 0, prompt: str = "") -> str:
    """``n`` tokens from a count N-gram model continuing ``prompt``, decoded to text."""
    from minipar.models.sample import ProbStepper, generate

    vocab = model.vocab
    bos, eos, unk = vocab.bos_id, vocab.eos_id, vocab.unk_id

    def dist(history):
        ends = [i for i, x in enumerate(history) if x == eos]
        sentence = history[ends[-1] + 1:] if ends else history  # the sentence so far
        p = model.distributions([sentence])[0]
        p[[bos, unk]] = 0.0
        if not p.sum() > 0:  # maximum likelihood can have nothing left: end the sentence
            p[eos] = 1.0
        return p

    ids = [int(i) for i in vocab.encode_line(prompt)] if prompt else []
    return vocab.decode(generate(ProbStepper(dist, ids), n, temperature, seed,
                                 banned=[bos, unk]))


def generate_text(path: str, chars: int = 200, temperature: float = 1.0, seed: int = 0,
                  prompt: str | None = None) -> str:
    """The prompt (default: ``tasks.default_prompt``) followed by ``chars`` tokens sampled
    from the run or model at ``path``; the same text the training run printed for its seed."""
    from minipar.tasks import default_prompt, join_prompt
    if chars < 1:
        raise ConfigError(f"--chars must be at least 1, got {chars}")
    if not temperature >= 0:
        raise ConfigError(f"--temperature must be >= 0, got {temperature}")
    kind, where = find_run(path)
    if kind in ("file", "ngram"):
        from minipar.models.ngram import NGramModel, load_model
        # a run's model.npz is always native; a file given by the user may be ARPA
        model = NGramModel.load(where) if kind == "ngram" else load_model(where)
        vocab = model.vocab
        prompt = "" if prompt is None else prompt
        text = ngram_text(model, chars, temperature, seed, prompt)
    else:
        task, model, vocab = load_neural(where)
        prompt = default_prompt(vocab) if prompt is None else prompt
        text = task.sample(model, vocab, chars, temperature, seed, prompt)
    return join_prompt(prompt, text, vocab)


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
