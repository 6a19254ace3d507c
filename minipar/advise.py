"""Which parallel method should I use? The cost model's answer: ``python -m minipar.advise``.

    python -m minipar.advise                                   # the default LSTM, 1..1024 ranks
    python -m minipar.advise --model lstm --hidden 512 --layers 2 --batch 64 \\
        --ranks 1,2,4,8,64,1024 --network 100Gb-IB --memory 2GB
    python -m minipar.advise --model classifier --ranks 1,2,4 --measure
    python -m minipar.advise --keras runs/seed-model --batch 32
    python -m minipar.advise --params 25M --flops 1.2G --batch 256 --network 10GbE --json

For every rank count it predicts each method minipar has (data parallel with each allreduce
algorithm, bucketed, with overlap; local SGD; the parameter server; GPipe and 1F1B with M
micro-batches; data x pipeline grids; for --model ngram the count exchange), prints a table
(step time split into compute, communication and bubble; efficiency T(1) / (p T(p)) at a
fixed global batch; bytes sent and memory per rank; what bounds the step) and recommends
the fastest exact method that fits, with its reason. Compute is measured on this machine
by timing real steps of the model (for --params, FLOPs at this machine's GEMM rate);
communication comes from the alpha-beta-gamma model (``bench calibrate``, or a named
network). --measure runs the top predicted methods (p <= 4) for a few steps and sets
the measured step beside the prediction. The formulas: docs/scheduling.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from minipar.comm import launch
from minipar.core.errors import ConfigError, UserError
from minipar.core.units import parse_size
from minipar.planning import advise as adv
from minipar.planning import advise_report
from minipar.planning.workload import keras_counts

DEFAULT_RANKS = "1,2,4,8,64,1024"
MODEL_OPTS = ("model", "data", "tokens", "max_chars", "embed", "hidden", "layers", "seq_len",
              "context", "order", "batch_size", "dtype", "tie_weights")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m minipar.advise", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    m = ap.add_argument_group("the model (a minipar.train model, a saved Keras-style model, "
                              "or raw counts)")
    m.add_argument("--model", default="lstm", help="lstm, mlp, classifier or ngram "
                   "(sizes as minipar.train; default lstm)")
    for flag, kind, hlp in [("--embed", int, "embedding size"), ("--hidden", int, "hidden size"),
                            ("--layers", int, "LSTM layers"), ("--seq-len", int, "LSTM window"),
                            ("--context", int, "MLP context n-1"), ("--order", int, "N-gram order"),
                            ("--data", str, "training data (default: the built-in corpus)"),
                            ("--max-chars", int, "use the first CHARS of the data"),
                            ("--tokens", str, "char or word")]:
        m.add_argument(flag, type=kind, help=hlp)
    m.add_argument("--batch", "--batch-size", dest="batch_size", type=int,
                   help="global batch, rows per step over all ranks (default: the model's)")
    m.add_argument("--dtype", choices=["float32", "float64"])
    m.add_argument("--tie-weights", action="store_true", default=None)
    m.add_argument("--keras", metavar="DIR", help="a model saved by Sequential.save")
    m.add_argument("--params", help="raw counts: parameters (e.g. 25M)")
    m.add_argument("--flops", help="raw counts: forward + backward FLOPs per row (e.g. 1.2G)")
    m.add_argument("--act-bytes", default="0", help="raw counts: activation bytes per row")
    m.add_argument("--data-size", help="rows in one pass over the data (e.g. 2M; a "
                   "minipar.train model: its data's), for the time of an epoch")
    ap.add_argument("--ranks", default=DEFAULT_RANKS, help=f"rank counts (default {DEFAULT_RANKS})")
    ap.add_argument("--network", default="calibrated", help="calibrated (this machine), "
                    f"{', '.join(adv.PRESETS)}, or alpha=5us,beta=0.1ns/B")
    ap.add_argument("--calibration", help="calibration JSON, or P=PATH,... one per rank count")
    ap.add_argument("--memory", help="memory per rank (e.g. 2GB): methods over it are unfit")
    ap.add_argument("--buckets", default="1M", help="allreduce bucket sizes to try (1M,4M)")
    ap.add_argument("--average-every", default="4", help="local SGD periods k to try (4,16)")
    ap.add_argument("--measure", action="store_true", help="run the top methods at p <= 4 "
                    "(those minipar.train or minipar.pipeline can run) for a few steps and "
                    "compare")
    ap.add_argument("--top", type=int, default=3, help="--measure: methods per rank count")
    ap.add_argument("--steps", type=int, default=30, help="--measure: steps per run")
    ap.add_argument("--plot", default="runs/advise.png", help="the PNG (''  for none)")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of tables")
    ap.add_argument("--verbose", action="store_true", help="list every method that cannot run")
    return ap


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} {text!r}: give whole numbers separated by commas") from None
    if not vals or min(vals) < 1:
        raise UserError(f"{what} {text!r}: every value must be >= 1")
    return vals


def _count(text: str, what: str) -> float:
    t = text.strip().upper()
    scale = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise UserError(f"{what} {text!r}: write a number, e.g. 25M or 1.2G") from None
    if value <= 0:
        raise UserError(f"{what} {text!r}: must be positive")
    return value


def workload(args, log):
    from minipar.training import profile

    isz = 8 if args.dtype == "float64" else 4
    if args.params or args.flops:
        if not (args.params and args.flops and args.batch_size):
            raise UserError("raw counts need --params, --flops and --batch together")
        counts = {"params": int(_count(args.params, "--params")),
                  "flops_per_row": _count(args.flops, "--flops"),
                  "act_bytes_per_row": _count(args.act_bytes, "--act-bytes")
                  if args.act_bytes != "0" else 0.0}
        return profile.counted_workload(f"{args.params} parameters, {args.flops} FLOPs/row",
                                        counts, args.batch_size, isz), None
    if args.keras:
        from minipar.keras import fit_timing

        try:
            with open(f"{args.keras}/config.json") as fh:
                keras_counts(json.load(fh), isz)  # a layer without counts fails here
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"--keras {args.keras}: not a saved model ({exc})") from None
        return fit_timing.workload(args.keras, args.batch_size or 32, isz, log), None
    if args.model not in ("lstm", "mlp", "classifier", "ngram"):
        raise UserError(f"unknown model {args.model!r}: use lstm, mlp, classifier or ngram "
                        "(or --keras DIR, or --params and --flops)")
    options = {k: getattr(args, k) for k in MODEL_OPTS}
    return profile.workload(options, log=log), options


def run(argv=None) -> int:
    args = _parser().parse_args(argv)
    ranks = _ints(args.ranks, "--ranks")
    memory = parse_size(args.memory) if args.memory else None
    buckets = tuple(parse_size(b) for b in args.buckets.split(","))
    every = tuple(_ints(args.average_every, "--average-every"))
    net = adv.network(args.network, args.calibration)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else \
        (lambda m: print(m, flush=True))
    data_size = int(_count(args.data_size, "--data-size")) if args.data_size else None
    if args.measure and (args.model == "ngram" or args.keras or args.params or args.flops):
        raise UserError("--measure runs minipar.train models (lstm, mlp, classifier)")
    if args.top < 1 or args.steps < 5:
        raise UserError("--top must be at least 1 and --steps at least 5 (the first 3 are "
                        "not counted)")
    try:
        w, options = workload(args, log)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    w.epoch_rows = data_size or w.epoch_rows
    advice = adv.advise(w, ranks, net, memory, buckets, every)
    measured = {}
    if args.measure:
        measured = _measure(advice, options, args, log)
    if args.json:
        print(json.dumps(adv.rows_json(advice, measured), indent=1))
    else:
        print(advise_report.text(advice, measured, args.verbose))
    if args.plot:
        path = advise_report.plot(advice, args.plot, measured)
        log(f"wrote {path}")
    return 0


def _measure(advice, options, args, log) -> dict:
    from minipar.training.advise_runs import measure, pipeline_args, train_args

    cfg = advice.workload.settings

    def runnable(r) -> bool:  # grids have no command of their own to run
        return (train_args(r.method, options) is not None
                or pipeline_args(r.method, options, cfg) is not None)

    out = {}
    for p in sorted(advice.best):
        if p > 4:
            continue
        rows = sorted((r for r in advice.rows if r.ranks == p and r.fits and runnable(r)),
                      key=lambda r: r.step)[:args.top]
        for r in rows:
            log(f"measuring {r.method} on {p} rank{'s' if p > 1 else ''} "
                f"({args.steps} steps)...")
            t = measure(r.method, p, options, cfg, args.steps)
            if t is not None:
                out[(r.method, p)] = t
    return out


def main(argv=None) -> int:
    """``run`` with every user error as one line on stderr and exit status 2."""
    return launch.main_of(run)(argv)


if __name__ == "__main__":
    sys.exit(main())
