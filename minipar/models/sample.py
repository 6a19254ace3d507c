"""Generate text from a trained language model, with a temperature and a seed.

Every model is driven through the same small interface, a *stepper*:

    scores()     -> (V,) array: log-probabilities (or logits) of the next token
    push(token)  -> None: append a token to the history

and one loop draws from it:

    p_j = exp(s_j / tau) / sum_k exp(s_k / tau)      tau = temperature
    w   ~ p     (inverse CDF with a generator seeded by ``seed``)

tau = 1 samples the model itself, tau < 1 sharpens towards the likeliest token, tau > 1
flattens towards uniform; tau = 0 (and the limit tau -> 0) is the arg-max, greedy decoding.
Scores are log-probabilities up to a constant, so logits from a softmax layer and the log
of a count model's probabilities are treated the same way.

Steppers here: ``LSTMStepper`` (keeps the recurrent state, so each new token costs one
step), ``MLPStepper`` (a sliding window of the last n-1 tokens) and ``ProbStepper`` (any
next-token distribution ``dist(history)``, e.g. the count N-gram model's through
``sentence_distribution``; ``NGramModel.sample`` remains the batched, sentence-by-sentence
sampler of that model).
"""

from __future__ import annotations

import numpy

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd import no_grad
from minipar.models.lstm_lm import LSTMLM
from minipar.models.mlp_lm import MLPLM


def draw(scores, temperature: float, rng: numpy.random.Generator) -> int:
    """One token from softmax(scores / temperature); the arg-max when temperature <= 0."""
    s = numpy.asarray(scores, dtype=numpy.float64).reshape(-1)
    if temperature <= 0:
        return int(numpy.argmax(s))
    z = s / temperature
    z -= z.max()  # exp never overflows; as tau -> 0 every non-max entry underflows to 0
    p = numpy.exp(z)
    cdf = numpy.cumsum(p)
    u = rng.random() * cdf[-1]
    return int(min(numpy.searchsorted(cdf, u, side="right"), len(cdf) - 1))


def generate(stepper, n: int, temperature: float = 1.0, seed: int = 0,
             banned=()) -> list[int]:
    """Draw ``n`` tokens from ``stepper``; the same seed gives the same tokens. Ids in
    ``banned`` (e.g. ``<s>``, which is only ever context) are never drawn."""
    rng = numpy.random.default_rng(seed)
    banned = list(banned)
    out = []
    with no_grad():
        for _ in range(n):
            scores = numpy.array(stepper.scores(), dtype=numpy.float64)
            scores[banned] = -numpy.inf
            token = draw(scores, temperature, rng)
            stepper.push(token)
            out.append(token)
    return out


class LSTMStepper:
    """Steps an ``LSTMLM`` one token at a time, carrying (h, c) between steps.

    The prompt (at least one token: the LSTM has no output before its first input) is run
    as one window; afterwards each ``push`` runs a (1, 1) window."""

    def __init__(self, model, prompt):
        if len(prompt) == 0:
            raise ValueError("an LSTM needs a prompt of at least one token")
        self.model, self.state = model, None
        self._feed(list(prompt))

    def _feed(self, ids):
        with no_grad():
            logits, self.state = self.model(xp.asarray([ids]), self.state)
        self._scores = backend.to_numpy(logits.data[0, -1])

    def scores(self):
        return self._scores

    def push(self, token: int) -> None:
        self._feed([token])


class MLPStepper:
    """Steps an ``MLPLM``: the context is the last n-1 tokens, left-padded with ``pad_id``
    while the history is shorter than that."""

    def __init__(self, model, prompt, pad_id: int = 0):
        self.model = model
        self.history = [pad_id] * model.context + list(prompt)

    def scores(self):
        ctx = xp.asarray([self.history[-self.model.context:]])
        with no_grad():
            return backend.to_numpy(self.model(ctx).data[0])

    def push(self, token: int) -> None:
        self.history.append(token)


class ProbStepper:
    """Wraps ``dist(history) -> (V,) probabilities`` (a count model's next-token
    distribution): scores are log p, with p = 0 mapped to -inf (never drawn)."""

    def __init__(self, dist, prompt):
        self.dist, self.history = dist, list(prompt)

    def scores(self):
        p = numpy.asarray(self.dist(self.history), dtype=numpy.float64)
        with numpy.errstate(divide="ignore"):
            return numpy.log(p)

    def push(self, token: int) -> None:
        self.history.append(token)


def sentence_distribution(ngram, eos: int = 2):
    """``dist(history)`` for a count ``NGramModel``: it conditions on the current sentence
    only (the tokens after the last </s>; the model puts <s> in front itself)."""
    def dist(history):
        ends = [i for i, t in enumerate(history) if t == eos]
        return ngram.distributions([history[ends[-1] + 1:] if ends else history])[0]
    return dist


def stepper_for(model, prompt, pad_id: int = 0):
    """The stepper that fits ``model``: an LSTMLM, an MLPLM, a count N-gram model (anything
    with ``distributions(histories)``), or a callable ``dist(history)``."""

    if isinstance(model, LSTMLM):
        return LSTMStepper(model, prompt)
    if isinstance(model, MLPLM):
        return MLPStepper(model, prompt, pad_id)
    if hasattr(model, "distributions"):
        return ProbStepper(sentence_distribution(model), prompt)
    if callable(model):
        return ProbStepper(model, prompt)
    raise TypeError(f"cannot sample from a {type(model).__name__}")


def sample_ids(model, prompt, n: int, temperature: float = 1.0, seed: int = 0,
               pad_id: int = 0, banned=()) -> list[int]:
    """``n`` token ids continuing ``prompt`` (ids). The model is put in eval mode (no
    dropout) for the call and restored after."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        return generate(stepper_for(model, prompt, pad_id), n, temperature, seed, banned)
    finally:
        if was_training:
            model.train()
