"""A trained run read back from its directory: the model it left, and text sampled from it.

A neural run (``--model lstm`` or ``mlp``) is rebuilt from its latest checkpoint; an N-gram
run from ``model.npz`` (or a model file given directly, ``.npz`` or ARPA).
"""

from __future__ import annotations

import dataclasses
import os

from minipar.core.errors import CheckpointError, ConfigError
from minipar.data.tokenize import Vocab
from minipar.models.ngram_lm import NGramModel, load_model
from minipar.models.sample import ProbStepper, generate
from minipar.training import checkpoint
from minipar.training.tasks import TaskConfig, default_config, default_prompt, get_task, join_prompt

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
    if chars < 1:
        raise ConfigError(f"--chars must be at least 1, got {chars}")
    if not temperature >= 0:
        raise ConfigError(f"--temperature must be >= 0, got {temperature}")
    kind, where = find_run(path)
    if kind in ("file", "ngram"):
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
