"""The single-process pieces of training, one ``Task`` per model kind, and a plain loop.

A task knows its data, its model and its loss; the data-parallel trainer calls the same
methods and adds only the communication. Per step:

    batch  = next(task.batches(data.train, cfg, epoch))     global batch, rows first (host)
    mine   = shard_batch(batch, rows)                      this rank's rows
    n      = task.count(batch)                              global count, no message needed
    s, c, state = task.loss(model, mine, state)             SUM over my rows and its count
    (s * (1 / n)).backward()                                my share of the mean's gradient
    ... sum the gradients over ranks, clip, optimizer step ...

The contract that makes p ranks equal one process: every batch is a tuple of arrays whose
first axis is the row (an LM stream, a context window, an example); the loss of a batch is
a sum of per-row terms; so the global mean is

    L = (sum over ranks r of  s_r) / (sum over ranks r of c_r),     n = sum_r c_r

and dL/dw = sum_r d(s_r / n)/dw: each rank back-propagates s_r / n and the gradients are
SUMMED across ranks (not averaged). ``count(batch)`` gives n from the global batch, which
every rank builds identically, so no message is needed for it. A rank with no rows gets
``(0, 0, state)`` and contributes zero gradients.

Recurrent state (the LSTM LM): ``loss`` takes the (h, c) left by the previous window of the
same rows and returns the new one already DETACHED (the truncation point of truncated
BPTT), shape (layers, my rows, hidden). Pass ``None`` at the start of every epoch (the
windows start again from the beginning of each row's stream); a rank must keep the same
rows from step to step within an epoch. Other tasks ignore the state and return None.

``cfg`` is a ``TaskConfig``: ``default_config(kind, **changes)`` gives the measured
defaults; the command-line trainer fills one from its ``TrainConfig`` (same field names).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy

from minipar.core import backend
from minipar.autograd import Tensor, binary_cross_entropy_with_logits, no_grad
from minipar.data import (BOS, EOS, ClassifierBatches, ContextBatches, LMBatches, MarkovSource,
                          load_classify, load_corpus)
from minipar.core.errors import ConfigError
from minipar.data.classify import Examples
from minipar.data.tokenize import Vocab
from minipar.models.bow import BagOfWords
from minipar.models.classifier import LSTMClassifier
from minipar.models.lstm_lm import LSTMLM, detach_state
from minipar.models.mlp_lm import MLPLM
from minipar.nn.module import Module
from minipar.models.sample import sample_ids
from minipar.nn.optim import Adam, clip_grad_norm


@dataclass
class TaskConfig:
    """Options the tasks read (names as in ``minipar.training.config.TrainConfig``)."""

    model: str = "lstm"           # lstm | mlp | classifier | bow
    data: str | None = None       # None/"builtin", a file, or "markov" (synthetic source)
    valid: str | None = None      # a separate validation file (else a split of data)
    tokens: str = "char"
    lower: bool = False
    min_count: int = 1            # rarer tokens become <unk>
    max_chars: int | None = None  # cap on the built-in corpus (quick runs)
    batch_size: int = 32          # GLOBAL rows per step, over all ranks
    seq_len: int = 64
    context: int = 4
    embed: int = 64
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.0
    tie_weights: bool = False
    embed_std: float | None = None  # LM embedding init std (None: the model's default)
    steps: int = 300
    epochs: int | None = None     # when set, overrides steps
    lr: float = 3e-3
    lr_schedule: str = "constant"  # or "linear": lr (1 - step / steps), down to 0 at the end
    beta1: float = 0.9            # Adam's decay of the gradients' running mean
    beta2: float = 0.999          # ... and of their squares'
    clip: float = 1.0
    seed: int = 0
    dtype: str = "float32"
    log_every: int = 50
    eval_batch: int = 64          # rows (LM) or examples per evaluation batch
    max_examples: int | None = None          # classifier: cap on built-in sentences
    markov: dict = field(default_factory=lambda: {"order": 2, "vocab_size": 20,
                                                  "train": 1_000_000, "valid": 100_000})


def default_config(kind: str, **overrides) -> TaskConfig:
    """Defaults for under a minute of ``mpiexec -n 4 python -m minipar.train`` on 2 cores
    (one BLAS thread per rank, MPIR_CVAR_ENABLE_HEAVY_YIELD=1). lstm, tuned 2026-12-04 for
    the validation perplexity reached in that minute on the built-in characters (whole
    runs, wall time): hidden 128, batch 32, lr 3e-3 constant, 1500 steps: 3.93 in 27 s;
    3000 steps: 3.65 in 53 s; batch 64, 2000 steps, lr 2e-2 falling linearly: 3.38 in 57 s;
    hidden 192, 1150 steps, the same: 3.29 in 60 s (the 5-gram: 3.23); hidden 256, 800
    steps: 3.30 in 75 s. The model was short of steps and size, not over-fitting: dropout
    0.2 and a falling rate at the old size both made it worse. Adam's betas (0.8, 0.99)
    instead of (0.9, 0.999): 3.20, 3.23, 3.20 for seeds 0-2 against 3.33, 3.33 (a shorter
    memory of the gradients suits a run of 1,000 steps at a falling rate). mlp 500 steps in
    3.2 s and 4000 in 37 s (ppl 4.13); classifier 250 steps in 10.6 s (accuracy 0.971),
    2026-11-28."""
    base = {
        "lstm": dict(embed=64, hidden=192, batch_size=64, seq_len=64, lr=2e-2,
                     lr_schedule="linear", steps=1000, beta1=0.8, beta2=0.99),
        "mlp": dict(context=5, embed=32, hidden=256, batch_size=256, lr=3e-3, steps=3000),
        "classifier": dict(tokens="char", embed=32, hidden=64, batch_size=32, lr=1e-2,
                           steps=500),
        "bow": dict(tokens="char", batch_size=32, lr=1e-2, steps=250),
    }
    if kind not in base:
        raise ConfigError(f"unknown task {kind!r}: use one of {', '.join(base)}")
    return replace(TaskConfig(model=kind, **base[kind]), **overrides)


def learning_rate(cfg, step: int, steps: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``steps``:

        constant:  lr          linear:  lr * (1 - step / steps)
    """
    schedule = cfg.lr_schedule
    if schedule == "constant":
        return cfg.lr
    if schedule == "linear":
        return cfg.lr * (1.0 - step / max(steps, 1))
    raise ConfigError(f"unknown lr schedule {schedule!r}: use 'constant' or 'linear'")


@dataclass
class TaskData:
    """What a task trains and evaluates on. ``info`` holds extras (e.g. the source's floor)."""

    train: numpy.ndarray | Examples  # token ids (language models) or labelled examples
    valid: numpy.ndarray | Examples
    vocab: Vocab
    info: dict = field(default_factory=dict)


def shard_batch(batch, rows):
    """The rows ``rows`` (indices into the global batch; None: all) of every array of a
    batch. Indices past the batch's end (a short last batch) are dropped."""
    if rows is None:
        return batch
    rows = numpy.asarray(rows, dtype=numpy.int64)
    rows = rows[rows < len(batch[0])]
    return tuple(a[rows] for a in batch)


def _device(a):
    return backend.from_numpy(numpy.ascontiguousarray(a))


class Task:
    """Shared parts; subclasses fill in data, model, batches, loss, evaluation."""

    kind = ""

    def build_model(self, cfg, vocab_size: int):
        """The model, initialised from ``backend.seed(cfg.seed)``: every rank builds the same
        one."""
        backend.seed(cfg.seed)
        with backend.dtype_scope(cfg.dtype):
            return self._model(cfg, vocab_size)

    def make_optimizer(self, model, cfg):
        return Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))

    def steps_per_epoch(self, split, cfg) -> int:
        return len(self._batcher(split, cfg, 0, train=True))

    def batches(self, split, cfg, epoch: int = 0, rows=None):
        """Global batches of one epoch (``rows``: only these rows of each)."""
        for batch in self._batcher(split, cfg, epoch, train=True):
            yield shard_batch(batch, rows)

    def count(self, batch) -> int:
        """Number of loss terms in a batch: rows (examples) unless a subclass says tokens."""
        return len(batch[0])

    def evaluate(self, model, split, cfg) -> dict:
        """Mean loss over a whole split in eval mode, plus the task's own figures."""
        was = model.training
        model.eval()
        total, n, extra, state = 0.0, 0, [], None
        try:
            with no_grad():
                for batch in self._batcher(split, cfg, 0, train=False):
                    s, c, state, more = self._eval_batch(model, batch, state)
                    total, n = total + s.item(), n + c
                    extra.append(more)
        finally:
            model.train(was)
        return self._metrics(total / max(n, 1), n, extra)

    def _eval_batch(self, model, batch, state):
        """(loss sum, count, state, anything the task's metrics need) of one batch."""
        return (*self.loss(model, batch, state), None)


def default_prompt(vocab) -> str:
    """Where a sample starts unless told otherwise: "The" opens many English sentences."""
    return "the" if vocab.lower else "The"


def join_prompt(prompt: str, text: str, vocab) -> str:
    """The prompt followed by its continuation (a space between words, none between chars)."""
    return prompt + (" " if prompt and vocab.kind == "word" else "") + text


class LanguageModelTask(Task):
    """Shared by the two neural LMs: corpus or synthetic data, perplexity, sampling."""

    def load_data(self, cfg) -> TaskData:
        if cfg.data == "markov":
            m = dict(cfg.markov)
            src = MarkovSource(order=m["order"], vocab_size=m["vocab_size"], seed=cfg.seed)
            corpus = src.corpus(m["train"], m["valid"], 0, seed=cfg.seed)
            info = {"entropy_rate": src.entropy_rate(), "floor_ppl": src.perplexity()}
            return TaskData(corpus.train, corpus.valid, corpus.vocab, info)
        corpus = load_corpus(cfg.data, valid=cfg.valid, tokens=cfg.tokens, lower=cfg.lower,
                             max_chars=cfg.max_chars)
        return TaskData(corpus.train, corpus.valid, corpus.vocab, {"summary": corpus.summary()})

    def count(self, batch) -> int:
        return int(batch[1].size)  # every target token is one loss term

    def _metrics(self, loss, n, extra):
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "tokens": n}

    def sample(self, model, vocab, n: int = 200, temperature: float = 1.0, seed: int = 0,
               prompt: str = "") -> str:
        """``n`` tokens after ``prompt`` (each line of the corpus ended in </s>, so a text
        starts after one), decoded to text."""
        ids = [EOS] + [int(i) for i in vocab.encode_line(prompt)] if prompt else [EOS]
        out = sample_ids(model, ids, n, temperature, seed, pad_id=BOS, banned=[BOS])
        return vocab.decode(out)


class LSTMTask(LanguageModelTask):
    """LSTM LM, truncated BPTT over (x, y) windows (B rows, <= seq_len tokens)."""

    kind = "lstm"

    def _model(self, cfg, V):
        return LSTMLM(V, cfg.embed, cfg.hidden, cfg.layers, cfg.tie_weights, cfg.dropout,
                      embed_std=cfg.embed_std)

    def _batcher(self, split, cfg, epoch, train):
        if train:
            return LMBatches(split, batch=cfg.batch_size, seq=cfg.seq_len, name="train")
        # evaluation: as many rows as fit, so a short validation text still works
        seq = max(1, min(cfg.seq_len, len(split) - 1))
        rows = max(1, min(cfg.eval_batch, (len(split) - 1) // seq))
        return LMBatches(split, batch=rows, seq=seq, name="valid")

    def loss(self, model, batch, state):
        x, y = batch
        if len(x) == 0:
            return Tensor(0.0), 0, state
        s, new_state = model.loss(_device(x), _device(y), state, reduction="sum")
        return s, int(y.size), detach_state(new_state)


class MLPTask(LanguageModelTask):
    """Neural N-gram over shuffled context windows (x (B, n-1), y (B,))."""

    kind = "mlp"

    def _model(self, cfg, V):
        return MLPLM(V, cfg.context, cfg.embed, cfg.hidden, cfg.dropout,
                     embed_std=1.0 if cfg.embed_std is None else cfg.embed_std)

    def _batcher(self, split, cfg, epoch, train):
        bs = cfg.batch_size if train else min(len(split), 64 * cfg.eval_batch)
        batcher = ContextBatches(split, cfg.context, bs, shuffle=train, seed=cfg.seed,
                                 drop_last=train, name="train" if train else "valid")
        batcher.set_epoch(epoch)
        return batcher

    def loss(self, model, batch, state):
        x, y = batch
        if len(x) == 0:
            return Tensor(0.0), 0, state
        return model.loss(_device(x), _device(y), reduction="sum"), int(len(y)), None


class ClassifierTask(Task):
    """LSTM classifier on (ids (B, T), lengths (B,), labels (B,)) padded batches."""

    kind = "classifier"

    def load_data(self, cfg) -> TaskData:
        d = load_classify(cfg.data, valid=cfg.valid, tokens=cfg.tokens, lower=cfg.lower,
                          seed=cfg.seed, min_count=cfg.min_count,
                          max_examples=cfg.max_examples)
        if len(d.labels) != 2:
            raise ConfigError(f"the classifier is binary; the data has {len(d.labels)} labels")
        return TaskData(d.train, d.valid, d.vocab, {"labels": d.labels})

    def _model(self, cfg, V):
        return LSTMClassifier(V, cfg.embed, cfg.hidden, cfg.layers, cfg.dropout)

    def _batcher(self, split, cfg, epoch, train):
        batcher = ClassifierBatches(split, cfg.batch_size if train else cfg.eval_batch,
                                    shuffle=train, seed=cfg.seed)
        batcher.set_epoch(epoch)
        return batcher

    def loss(self, model, batch, state):
        ids, lengths, labels = batch
        if len(ids) == 0:
            return Tensor(0.0), 0, state
        ids = ids[:, :max(int(lengths.max()), 1)]  # a shard may need less padding
        s = model.loss(_device(ids), _device(lengths), _device(labels), reduction="sum")
        return s, int(len(labels)), None

    def _eval_batch(self, model, batch, state):
        ids, lengths, labels = batch
        logits = model(_device(ids), _device(lengths))
        s = binary_cross_entropy_with_logits(logits, _device(labels), reduction="sum")
        correct = int(((backend.to_numpy(logits.data) > 0) == (labels > 0)).sum())
        return s, int(len(labels)), None, correct

    def _metrics(self, loss, n, extra):
        return {"loss": loss, "accuracy": sum(extra) / max(n, 1), "examples": n}


class BagOfWordsTask(ClassifierTask):
    """The order-blind baseline on the same data."""

    kind = "bow"

    def _model(self, cfg, V):
        return BagOfWords(V)


TASKS = {t.kind: t for t in (LSTMTask(), MLPTask(), ClassifierTask(), BagOfWordsTask())}


def get_task(kind: str) -> Task:
    if kind not in TASKS:
        raise ConfigError(f"unknown task {kind!r}: use one of {', '.join(TASKS)}")
    return TASKS[kind]


@dataclass
class TrainResult:
    model: Module
    data: TaskData
    history: list[tuple[int, float, float]]  # (step, train loss per term, seconds since start)
    metrics: dict[str, float]                # evaluation on the validation split at the end
    step_time: float     # median seconds per step


def train(task: Task, cfg, data: TaskData | None = None, log=print) -> TrainResult:
    """One process: epoch -> batch -> forward -> loss -> backward -> clip -> Adam -> log."""
    data = data if data is not None else task.load_data(cfg)
    model = task.build_model(cfg, len(data.vocab))
    opt = task.make_optimizer(model, cfg)
    per_epoch = task.steps_per_epoch(data.train, cfg)
    steps = cfg.epochs * per_epoch if cfg.epochs else cfg.steps
    history, times, step, epoch = [], [], 0, 0
    start = time.perf_counter()
    while step < steps:
        state = None  # each epoch restarts the streams: no state carries over
        for batch in task.batches(data.train, cfg, epoch):
            t0 = time.perf_counter()
            loss_sum, count, state = task.loss(model, batch, state)
            opt.zero_grad()
            (loss_sum * (1.0 / count)).backward()
            if cfg.clip:
                clip_grad_norm(model.parameters(), cfg.clip)
            opt.lr = learning_rate(cfg, step, steps)
            opt.step()
            times.append(time.perf_counter() - t0)
            step += 1
            history.append((step, loss_sum.item() / count, time.perf_counter() - start))
            if log and (step % cfg.log_every == 0 or step == steps):
                log(f"{task.kind} step {step}/{steps} epoch {epoch} "
                    f"loss {history[-1][1]:.4f} ({1e3 * numpy.median(times[-50:]):.1f} ms/step)")
            if step >= steps:
                break
        epoch += 1
    metrics = task.evaluate(model, data.valid, cfg)
    if log:
        log(f"{task.kind} valid " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return TrainResult(model, data, history, metrics, float(numpy.median(times)))
