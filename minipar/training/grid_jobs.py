"""A grid of independent training jobs spread over ranks by a static plan
(``python -m minipar.grid``).

Estimated costs (any unit: only ratios matter to LPT):

    ngram   n_train * order * w,   w = 1.5 for kn (discounts and interpolation per order), else 1
            (on the built-in word corpus a 5-gram KN fit took 2x a 5-gram add-k fit, 4x a bigram)
    lstm    (3 * steps * batch * seq + n_valid) * (sum over layers 8 H (D_l + H) + 2 H V)
            (FLOPs per token of the gates and the decoder; training tokens count 3 times,
            forward + backward, the validation tokens once)
"""

from __future__ import annotations

import itertools
import time

from minipar.core.errors import UserError
from minipar.data.corpus import load_corpus
from minipar.data.synthetic import MarkovSource
from minipar.models.ngram_lm import SMOOTHINGS, NGramModel
from minipar.planning.plan import execute_plan
from minipar.planning.policies import make_plan
from minipar.training.tasks import default_config, get_task, train

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


def make_jobs(args) -> list[dict]:
    """The grid as a list of settings, in a fixed order (the same on every rank)."""
    if args.kind == "ngram":
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

    if args.kind == "lstm":
        return get_task("lstm").load_data(_lstm_config(args))
    if args.data == "synthetic":
        return MarkovSource(order=2, vocab_size=MARKOV["vocab_size"], seed=args.seed).corpus(
            MARKOV["train"], MARKOV["valid"])
    return load_corpus(None if args.data == "builtin" else args.data, tokens=args.tokens,
                       max_chars=args.max_chars)


def run_ngram(job: dict, corpus, args) -> dict:

    model = NGramModel.fit(corpus.train, corpus.vocab, job["order"], job["smoothing"], k=args.k)
    return {"valid ppl": model.perplexity(corpus.valid)["ppl"]}


def _lstm_config(args, job=None):

    data = {"builtin": None, "synthetic": "markov"}.get(args.data, args.data)
    extra = dict(hidden=job["hidden"], layers=job["layers"], lr=job["lr"]) if job else {}
    return default_config("lstm", data=data, tokens=args.tokens, max_chars=args.max_chars,
                          embed=args.embed, batch_size=args.batch, seq_len=args.seq,
                          steps=args.steps, seed=args.seed, markov=dict(MARKOV), **extra)


def run_lstm(job: dict, data, args) -> dict:
    """A short single-process training (``minipar.training.tasks.train``: truncated BPTT, Adam, clip
    1.0), then the perplexity on the whole validation split."""

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


def run_grid(args, comm) -> int:

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
