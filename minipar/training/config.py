"""The training configuration: one dataclass, one place for every option.

Each field becomes a command-line flag (``batch_size`` -> ``--batch-size``) with the help text
from its metadata, and a key of the same name in a TOML file (``--config run.toml``; dashes or
underscores both accepted). The command line wins over the file, the file over the defaults.
An unknown key or a value of the wrong type is one clear error.

``--resume RUN`` starts from the configuration saved in RUN's checkpoint (so the same model
and data come back without retyping them); a TOML file and the command line still win, so
``--resume RUN --steps 2000`` trains on to step 2000. Options about how the run is watched
(``NOT_RESUMED``) are this invocation's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import difflib
from dataclasses import dataclass, field

from minipar.core.errors import ConfigError
from minipar.training import checkpoint

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def opt(default, help, choices=None, positive=False, nonneg=False, unit=False,  # noqa: A002
        per_model=False):
    """A field with its help and checks (``unit``: in [0, 1), a probability or a decay)."""
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "positive": positive, "nonneg": nonneg,
                                            "unit": unit, "per_model": per_model})


def per_model(help, **kw):  # noqa: A002
    """An option whose default depends on --model (see minipar.training.tasks.default_config)."""
    return opt(None, help, per_model=True, **kw)


@dataclass
class TrainConfig:
    model: str = opt("lstm", "what to train", ("lstm", "mlp", "ngram", "classifier"))
    data: str = opt(None, "UTF-8 text file (classifier: TSV label<TAB>text); default: the "
                          "built-in corpus")
    valid: str = opt(None, "validation file (default: a split of --data)")
    tokens: str = per_model("token level: char or word",
                            choices=("char", "word"))
    lower: bool = opt(False, "lower-case the text first")
    max_chars: int = opt(None, "use only the first lines of the data up to this many "
                               "characters", positive=True)
    sync: str = opt("allreduce", "how replicas stay in step", ("allreduce", "average", "ps"))
    allreduce: str = opt("ring", "allreduce algorithm: mpi, ring, tree, rd, naive, shm "
                                 "(one host's shared memory, waits that sleep), or "
                                 "module:function (your own)")
    bucket_kb: int = opt(1024, "gradient bucket size in KiB", positive=True)
    overlap: bool = opt(False, "start each bucket's allreduce during backward, as soon "
                               "as its gradients are ready (any built-in algorithm)")
    average_every: int = opt(4, "--sync average: average parameters every k steps", positive=True)
    shard: str = opt(None, "how data is split across ranks (default: balanced for the "
                           "classifier, whose rows are padded, contiguous otherwise)",
                     ("contiguous", "strided", "balanced", "weighted"))
    shard_policy: str = opt("uneven", "what to do with uneven shards", ("uneven", "drop", "pad"))
    shard_weights: str = opt(None, "--shard weighted: comma-separated share per rank, e.g. 2,1")
    scheduler: str = opt(None, "--shard balanced: how rows are balanced: lpt, padded (a "
                               "rank's rows padded to its longest; the classifier's default, "
                               "lpt otherwise), block, round_robin, or module:function (your "
                               "own plan(costs, p))")
    batch_size: int = per_model("global batch size (rows or examples, over all ranks)",
                                positive=True)
    seq_len: int = opt(64, "LSTM: tokens per truncated-BPTT window", positive=True)
    context: int = per_model("MLP / N-gram: context length n-1 (N-gram order = context + 1)",
                             positive=True)
    order: int = opt(None, "N-gram order (default: context + 1)", positive=True)
    smoothing: str = opt("kn", "N-gram smoothing", ("ml", "addk", "kn", "stupid"))
    embed: int = per_model("embedding size", positive=True)
    hidden: int = per_model("hidden size", positive=True)
    layers: int = opt(1, "LSTM layers", positive=True)
    dropout: float = opt(0.0, "dropout probability", nonneg=True, unit=True)
    tie_weights: bool = opt(False, "LSTM LM: tie decoder and embedding weights")
    steps: int = per_model("training steps (ignored when --epochs is given)", positive=True)
    epochs: int = opt(None, "train for this many passes over the data", positive=True)
    lr: float = per_model("learning rate (Adam)", positive=True)
    lr_schedule: str = per_model("learning rate over the run: constant, or linear (from "
                                 "--lr down to 0 at the last step)",
                                 choices=("constant", "linear"))
    beta1: float = per_model("Adam: decay of the gradients' running mean, in [0, 1)",
                             unit=True)
    beta2: float = per_model("Adam: decay of the squared gradients' running mean, in [0, 1)",
                             unit=True)
    clip: float = opt(1.0, "global gradient-norm clip (0: off)", nonneg=True)
    seed: int = opt(0, "random seed (the same on every rank)")
    dtype: str = opt("float32", "floating point type", ("float32", "float64"))
    device: str = opt(None, "array backend (default: MINIPAR_DEVICE, else cpu)", ("cpu", "cuda"))
    out: str = opt(None, "run directory (default: runs/MODEL-TIMESTAMP)")
    eval_every: int = opt(0, "evaluate on validation data every N steps (0: at the end)",
                          nonneg=True)
    checkpoint_every: int = opt(0, "write a checkpoint every N steps (0: at the end only)",
                                nonneg=True)
    resume: str = opt(None, "continue the run in this directory (or from this checkpoint "
                            "directory) with its saved options; flags given again win; "
                            "with --out, the continuation goes there")
    sample_chars: int = opt(200, "length of the text sample at the end (0: none)", nonneg=True)
    show_comm: bool = opt(False, "print every message as it happens, rank-prefixed")
    trace: bool = opt(False, "write a Chrome trace (trace.json) and timeline.png")
    trace_steps: str = opt(None, "with --trace: put only these training steps in trace.json "
                                 "and timeline.png, e.g. 5 or 5-7 (the table keeps them all)")
    check_sync: int = opt(0, "every N steps verify all replicas hold identical parameters",
                          nonneg=True)
    check_collectives: bool = opt(False, "compare a fingerprint of every collective across "
                                         "ranks first (finds desyncs)")
    comm_timeout: float = opt(300.0, "seconds a rank may wait on one communication before the "
                                     "job is stopped with a report (0: wait forever)",
                              nonneg=True)
    log_every: int = opt(None, "a progress line every N steps (default: one line redrawn in "
                               "place on a terminal, about ten lines otherwise)", positive=True)
    debug: bool = opt(False, "show tracebacks for errors")
    quiet: bool = opt(False, "only the final report")

    def validate(self) -> TrainConfig:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            if v is None:
                continue
            if m.get("choices") and v not in m["choices"]:
                raise ConfigError(f"--{_flag(f.name)} must be one of "
                                  f"{', '.join(m['choices'])}, got {v!r}")
            if m.get("positive") and not v > 0:
                raise ConfigError(f"--{_flag(f.name)} must be positive, got {v}")
            if m.get("nonneg") and not v >= 0:
                raise ConfigError(f"--{_flag(f.name)} must not be negative, got {v}")
            if m.get("unit") and not 0.0 <= v < 1.0:
                raise ConfigError(f"--{_flag(f.name)} must be in [0, 1), got {v}")
        if self.shard == "weighted" and not self.shard_weights:
            raise ConfigError("--shard weighted needs --shard-weights, e.g. 2,1")
        self.traced_steps()
        return self

    def traced_steps(self) -> tuple[int, int] | None:
        """``--trace-steps`` as (first, last), both counted from 1; None for every step."""
        if self.trace_steps is None:
            return None
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(self.trace_steps))
        first, last = (int(m[1]), int(m[2] or m[1])) if m else (0, 0)
        if not 1 <= first <= last:
            raise ConfigError(f"--trace-steps must be a step or a range of steps such as 5 "
                              f"or 5-7, got {self.trace_steps!r}")
        return first, last

    def weights(self) -> list[float] | None:
        if not self.shard_weights:
            return None
        try:
            return [float(w) for w in str(self.shard_weights).split(",")]
        except ValueError:
            raise ConfigError(f"--shard-weights must be numbers separated by commas, "
                              f"got {self.shard_weights!r}") from None


# Where an option takes effect: given anywhere else, it gets a note at the start of the run
# (not an error: one TOML file may serve several models)
_NEURAL = ("sync", "allreduce", "bucket_kb", "overlap", "average_every", "shard", "shard_policy",
           "shard_weights", "scheduler", "batch_size", "seq_len", "embed", "hidden", "layers",
           "dropout", "tie_weights", "steps", "epochs", "lr", "lr_schedule", "beta1", "beta2",
           "clip", "dtype", "device", "eval_every", "checkpoint_every", "log_every",
           "check_sync", "trace_steps")
_WHERE = [
    (("order", "smoothing"), "--model ngram", lambda c: c.model == "ngram"),
    (("seq_len", "tie_weights"), "--model lstm", lambda c: c.model == "lstm"),
    (("layers",), "--model lstm or classifier", lambda c: c.model in ("lstm", "classifier")),
    (_NEURAL, "the neural models", lambda c: c.model != "ngram"),
    (("average_every",), "--sync average", lambda c: c.sync == "average"),
    (("bucket_kb", "overlap"), "--sync allreduce", lambda c: c.sync == "allreduce"),
    (("allreduce",), "--sync allreduce or average", lambda c: c.sync != "ps"),
    (("shard_weights",), "--shard weighted", lambda c: c.shard == "weighted"),
    (("scheduler",), "--shard balanced", lambda c: c.shard == "balanced"
     or (c.shard is None and c.model == "classifier")),
]


def no_effect(flag: str, where: str) -> str:
    """The note for an option given where it does nothing (this command and minipar.ngram)."""
    return f"{flag} has no effect here: it is for {where}"


def without_effect(cfg: TrainConfig, given) -> list[str]:
    """A note for each option in ``given`` (names) that this configuration does not use."""
    notes, said = [], set()
    for names, where, applies in _WHERE:
        for name in names:
            if name in given and name not in said and not applies(cfg):
                notes.append(no_effect(f"--{_flag(name)}", where))
                said.add(name)
    return notes


NOT_RESUMED = ("resume", "out", "debug", "quiet", "show_comm", "trace", "trace_steps", "log_every",
               "comm_timeout", "check_collectives", "check_sync")


# Options added after checkpoints were already being written, with the value every run
# used before: a run saved then resumes as it trained (the LSTM's betas have changed since)
OLD_DEFAULTS = {"beta1": 0.9, "beta2": 0.999}


def resumed_options(path: str) -> dict:
    """The options saved in the checkpoint ``--resume`` names, minus ``NOT_RESUMED``."""
    saved = checkpoint.read_meta(checkpoint.resolve(path)[0]).get("config") or {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    out = {k: v for k, v in saved.items() if k in names and k not in NOT_RESUMED}
    for name, before in OLD_DEFAULTS.items():
        if saved and name not in saved:   # a checkpoint from before the option existed
            out[name] = before
    return out


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _type_of(f):
    return {"int": int, "float": float, "str": str, "bool": bool}[
        f.type if isinstance(f.type, str) else f.type.__name__]


def build_parser(prog="python -m minipar.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Train a language model, in parallel under mpiexec: "
        "mpiexec -n 4 python -m minipar.train",
        epilog="Every option can also be set in a TOML file given with --config "
        "(keys as the option names); the command line wins.")
    p.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file "
                   "(the command line wins)")
    for f in dataclasses.fields(TrainConfig):
        kind = _type_of(f)
        h = f.metadata["help"]
        if f.metadata["per_model"]:
            h += " (default: depends on --model)"
        elif f.default is not None:
            h += f" (default: {f.default})"
        if kind is bool:
            p.add_argument("--" + _flag(f.name), action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=h)
        else:
            p.add_argument("--" + _flag(f.name), type=kind, default=argparse.SUPPRESS,
                           choices=f.metadata["choices"], metavar=None if f.metadata["choices"]
                           else f.name.split("_")[-1].upper(),
                           help=h)
    return p


def load_toml(path) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{path}: unknown key {key!r}")
        kind = _type_of(fields[name])
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{path}: {key} must be {kind.__name__}, got "
                              f"{type(value).__name__} {value!r}")
        out[name] = value
    return out


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            flags = [o for a in self._actions for o in a.option_strings]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.75)
                if word.startswith("--") and close:
                    message += f" (did you mean {close[0]}?)"
                    break
        raise ConfigError(message)


def parse_args(argv=None) -> TrainConfig:
    """Command line (and optional TOML file) -> validated TrainConfig."""
    parser = build_parser()
    parser.__class__ = _Parser
    ns = vars(parser.parse_args(argv))
    values = load_toml(ns.pop("config")) if ns.get("config") else {}
    ns.pop("config", None)
    values.update(ns)
    given = set(values)  # on the command line or in the TOML file, not the resumed run's
    if values.get("resume"):
        values = {**resumed_options(values["resume"]), **values}
    cfg = TrainConfig(**values).validate()
    cfg.notes = without_effect(cfg, given)  # said at the start of the run (not an option)
    return cfg
