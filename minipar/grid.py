"""A grid of independent training jobs spread over ranks by LPT: ``python -m minipar.grid``.

    mpiexec -n 2 python -m minipar.grid ngram --orders 2,3,4,5 --smoothing kn,addk
    mpiexec -n 3 python -m minipar.grid lstm --hidden 32,64,128 --layers 1,2 --steps 40

Every rank expands the same grid (the Cartesian product of the lists given), estimates each
job's cost, and builds the same static plan (``--policy lpt`` by default: longest job first
to the least-loaded rank, C <= (4/3 - 1/(3p)) C_opt; ``block`` to compare). Each rank runs
its own jobs one after the other, each inside a compute span of the trace; the results are
gathered to rank 0 through the traced communicator, which prints one table.

Estimated costs (any unit: only ratios matter to LPT):

    ngram   n_train * order * w,   w = 1.5 for kn (discounts and interpolation per order), else 1
            (on the built-in word corpus a 5-gram KN fit took 2x a 5-gram add-k fit, 4x a bigram)
    lstm    (3 * steps * batch * seq + n_valid) * (sum over layers 8 H (D_l + H) + 2 H V)
            (FLOPs per token of the gates and the decoder; training tokens count 3 times,
            forward + backward, the validation tokens once)

The table also shows the plan's predicted makespan (the estimates scaled to seconds by the
measured total, sum(seconds) / sum(estimates)) beside the measured one.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

from minipar import launch
from minipar.errors import UserError
from minipar import threads

# --data synthetic: a seeded order-2 Markov source (minipar.data.synthetic)
MARKOV = {"order": 2, "vocab_size": 16, "train": 200_000, "valid": 20_000}


def _list(text: str, kind=int, name: str = "") -> list:
    try:
        out = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{name} {text!r}: give values separated by commas") from None
    if not out:
        raise UserError(f"--{name} is empty")
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mpiexec -n P python -m minipar.grid", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", default="builtin", help="builtin, synthetic or a text file")
    common.add_argument("--max-chars", type=int, help="use only the first characters of the text")
    common.add_argument("--policy", default="lpt", choices=["lpt", "block", "round_robin"])
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--trace", help="write the Chrome trace here (and print the table)")
    ng = sub.add_parser("ngram", parents=[common], help="count-based N-gram models")
    ng.add_argument("--orders", default="2,3,4,5")
    ng.add_argument("--smoothing", default="kn,addk", help="kn, addk, ml, stupid")
    ng.add_argument("--tokens", default="word", choices=["word", "char"])
    ng.add_argument("--k", type=float, default=1.0, help="add-k constant")
    ls = sub.add_parser("lstm", parents=[common], help="short LSTM LM trainings")
    ls.add_argument("--hidden", default="32,64,128")
    ls.add_argument("--layers", default="1")
    ls.add_argument("--lr", default="0.003", help="Adam learning rates")
    ls.add_argument("--tokens", default="char", choices=["word", "char"])
    ls.add_argument("--embed", type=int, default=32)
    ls.add_argument("--batch", type=int, default=16)
    ls.add_argument("--seq", type=int, default=32)
    ls.add_argument("--steps", type=int, default=30)
    return ap


def make_jobs(args) -> list[dict]:
    """The grid as a list of settings, in a fixed order (the same on every rank)."""
    if args.kind == "ngram":
        from minipar.models.ngram import SMOOTHINGS
        smooth = _list(args.smoothing, str, "smoothing")
        bad = sorted(set(smooth) - set(SMOOTHINGS))
        if bad:
            raise UserError(f"--smoothing {','.join(bad)}: use {', '.join(SMOOTHINGS)}")
        orders = _list(args.orders, int, "orders")
        if min(orders) < 1:
            raise UserError("--orders must be at least 1")
        return [{"order": o, "smoothing": s} for o, s in itertools.product(orders, smooth)]
    hidden, layers = _list(args.hidden, int, "hidden"), _list(args.layers, int, "layers")
    lrs = _list(args.lr, float, "lr")
    if min(hidden + layers) < 1 or min(lrs) <= 0 or min(args.steps, args.batch, args.seq) < 1:
        raise UserError("--hidden, --layers, --steps, --batch, --seq and --lr must be positive")
    return [{"hidden": h, "layers": n, "lr": lr}
            for h, n, lr in itertools.product(hidden, layers, lrs)]


def estimate(job: dict, args, n_train: int, V: int, n_valid: int = 0) -> float:
    """The cost formulas of the module docstring."""
    if args.kind == "ngram":
        return n_train * job["order"] * (1.5 if job["smoothing"] == "kn" else 1.0)
    H, D = job["hidden"], args.embed
    gates = sum(8 * H * ((D if layer == 0 else H) + H) for layer in range(job["layers"]))
    return (3.0 * args.steps * args.batch * args.seq + n_valid) * (gates + 2 * H * V)


def _corpus(args):
    """Train/valid ids and vocabulary, loaded once per rank for all of its jobs."""
    from minipar.data.corpus import load_corpus
    from minipar.data.synthetic import MarkovSource

    if args.kind == "lstm":
        from minipar.tasks import get_task
        return get_task("lstm").load_data(_lstm_config(args))
    if args.data == "synthetic":
        return MarkovSource(order=2, vocab_size=MARKOV["vocab_size"], seed=args.seed).corpus(
            MARKOV["train"], MARKOV["valid"])
    return load_corpus(None if args.data == "builtin" else args.data, tokens=args.tokens,
                       max_chars=args.max_chars)


def run_ngram(job: dict, corpus, args) -> dict:
    from minipar.models.ngram import NGramModel

    model = NGramModel.fit(corpus.train, corpus.vocab, job["order"], job["smoothing"], k=args.k)
    return {"valid ppl": model.perplexity(corpus.valid)["ppl"]}


def _lstm_config(args, job=None):
    from minipar.tasks import default_config

    data = {"builtin": None, "synthetic": "markov"}.get(args.data, args.data)
    extra = dict(hidden=job["hidden"], layers=job["layers"], lr=job["lr"]) if job else {}
    return default_config("lstm", data=data, tokens=args.tokens, max_chars=args.max_chars,
                          embed=args.embed, batch_size=args.batch, seq_len=args.seq,
                          steps=args.steps, seed=args.seed, markov=dict(MARKOV), **extra)


def run_lstm(job: dict, data, args) -> dict:
    """A short single-process training (``minipar.tasks.train``: truncated BPTT, Adam, clip
    1.0), then the perplexity on the whole validation split."""
    from minipar.tasks import get_task, train

    res = train(get_task("lstm"), _lstm_config(args, job), data, log=None)
    return {"train loss": res.history[-1][1], "valid ppl": res.metrics["ppl"]}


def _name(job: dict) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in job.items())


def _table(jobs, costs, parts, plan, args) -> str:
    rows = {t: (rank, res) for rank, _, results in parts for t, res in results.items()}
    keys = [k for k in rows[0][1] if k != "seconds"]
    lines = [f"| job | settings | rank | est. cost | seconds | {' | '.join(keys)} |",
             "|---:|:---|---:|---:|---:|" + "---:|" * len(keys)]
    for t, job in enumerate(jobs):
        rank, res = rows[t]
        lines.append(f"| {t} | {_name(job)} | {rank} | {costs[t]:.3g} | {res['seconds']:.3f} | "
                     + " | ".join(f"{res[k]:.4g}" for k in keys) + " |")
    scale = sum(r["seconds"] for _, r in rows.values()) / max(sum(costs), 1e-300)
    walls = [wall for _, wall, _ in parts]
    lines += ["", "| rank | jobs | est. load (s) | measured (s) |", "|---:|---:|---:|---:|"]
    for rank, wall, results in parts:
        lines.append(f"| {rank} | {len(results)} | {plan.loads[rank] * scale:.3f} | {wall:.3f} |")
    lines += ["", f"makespan: measured {max(walls):.3f} s, predicted {plan.makespan * scale:.3f}"
              f" s, lower bound {plan.lower_bound * scale:.3f} s (policy {plan.policy}, "
              f"imbalance predicted {100 * plan.imbalance:.1f}%, measured "
              f"{100 * (max(walls) / (sum(walls) / len(walls)) - 1):.1f}%)"]
    return "\n".join(lines)


def _run(args, comm) -> int:
    from minipar.parallel.schedule import execute_plan, make_plan

    jobs = make_jobs(args)
    corpus = _corpus(args)
    costs = [estimate(j, args, len(corpus.train), len(corpus.vocab), len(corpus.valid))
             for j in jobs]
    plan = make_plan(costs, comm.size, args.policy)
    runner = run_ngram if args.kind == "ngram" else run_lstm
    if comm.rank == 0:
        print(f"grid {args.kind}: {len(jobs)} jobs on {comm.size} rank(s), policy "
              f"{plan.policy}; data {args.data}: vocabulary {len(corpus.vocab):,}, train "
              f"{len(corpus.train):,} tokens, valid {len(corpus.valid):,}")
        for note in comm.notes:
            print(f"note: {note}")
        print(plan.summary(), flush=True)

    def task(t, _results):
        t0 = time.perf_counter()
        out = runner(jobs[t], corpus, args)
        out["seconds"] = time.perf_counter() - t0
        return out

    comm.barrier()
    t0 = time.perf_counter()
    mine = execute_plan(comm, plan, task, combine=None)
    wall = time.perf_counter() - t0
    parts = comm.gather_obj((comm.rank, wall, mine), 0)
    if comm.rank == 0:
        print(_table(jobs, costs, parts, plan, args), flush=True)
    if args.trace:
        comm.report(chrome=args.trace)
    return 0


def run(argv, state) -> int:
    note = threads.NOTE
    args = _parser().parse_args(argv)
    make_jobs(args)  # option errors before MPI starts
    from minipar.parallel.comm import init

    comm = init(trace=True)
    if note:
        comm.notes.append(note)
    state["comm"] = comm  # a fault on one rank now ends every rank (launch.run)
    return _run(args, comm)


def main(argv=None) -> int:
    return launch.run(run, argv)


if __name__ == "__main__":
    sys.exit(main())
