"""Balanced (LPT) vs block shard plans, measured: makespan of real N-gram counting per shard.

    mpiexec -n 2 python -m minipar.bench schedule [--shards 64] [--unit 20000] [--order 3]
        [--chunk 8192] [--policies block,round_robin,lpt] [--reps 5] [--seed 0] [--json]

Shard sizes follow a heavy-tailed law: shard i holds round(unit * c_i) tokens with
c_i = 1 + Pareto(1.5) (``minipar.data.synthetic.heavy_tail``: a few shards dwarf the rest, the
mean is 3 and the variance infinite). The work on a shard is real: counting its 1..order
grams (``count_ngrams``) on a seeded synthetic Markov stream (every rank holds the same
stream), in chunks of ``--chunk`` tokens as a streaming counter that spills partial counts
would. Chunks keep the work proportional to the tokens, which is what a plan costed in
tokens assumes. Whole-shard counting (``--chunk 0``) is not: on the 2-vCPU host it took
110 ns/token in 8K chunks at any size, but 120 ns/token for a 5K shard and 290-830 ns/token
for 1-2M (likely NumPy's temporaries: beyond glibc's mmap threshold they get fresh pages on
every call). docs/benchmarks.md has the measured makespans.

For each policy every rank builds the same plan from the sizes, and ``execute_plan`` runs
this rank's shards through the traced communicator; each repetition runs every policy once,
in turn. Reported, median over ``--reps``:

    measured makespan   max over ranks of the time from a common barrier to its last shard
    predicted makespan  plan.makespan * s, with s = sum(t_i) / sum(size_i) the measured
                        seconds per token over every shard run (plan costs are tokens)
    imbalance           L_max / L_mean - 1, planned (sizes) and measured (busy seconds)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.core import threads
import numpy as np
from minipar.data.synthetic import MarkovSource
from minipar.models.ngram_counts import count_ngrams
from minipar.comm.communicator import init
from minipar.planning.plan import execute_plan
from minipar.planning.policies import make_plan
from minipar.data.synthetic import heavy_tail


def run(argv=None) -> int:
    note = threads.NOTE
    ap = argparse.ArgumentParser(prog="python -m minipar.bench schedule",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=64, help="number of shards")
    ap.add_argument("--unit", type=int, default=20_000, help="tokens per unit of size")
    ap.add_argument("--order", type=int, default=3, help="N-gram order counted per shard")
    ap.add_argument("--chunk", type=int, default=8192, help="tokens per counting chunk "
                    "(0: the whole shard at once)")
    ap.add_argument("--policies", default="block,round_robin,lpt")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per policy (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    if min(args.shards, args.unit, args.order, args.reps) < 1 or args.chunk < 0:
        raise UserError("--shards, --unit, --order and --reps must be at least 1, --chunk >= 0")



    comm = init(trace=True)
    policies = [p for p in args.policies.split(",") if p]
    sizes = [max(1, round(args.unit * c)) for c in heavy_tail(args.shards, args.seed)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    src = MarkovSource(order=2, vocab_size=64, seed=args.seed)
    stream = src.generate(int(starts[-1]), seed=args.seed) + 3  # ids above <s>, </s>, <unk>
    busy = {}

    def shard(i, _results):
        t0 = time.perf_counter()
        step = args.chunk or sizes[i]
        for a in range(starts[i], starts[i + 1], step):
            count_ngrams(stream[a:min(a + step, starts[i + 1])], args.order, bos=0, eos=1)
        busy[i] = time.perf_counter() - t0
        return None

    count_ngrams(stream[:10_000], args.order, bos=0, eos=1)  # warm caches and allocator
    plans = {name: make_plan(sizes, comm.size, name) for name in policies}
    spans = {name: [] for name in policies}   # makespan per repetition
    loads = {name: [] for name in policies}   # busy seconds per rank, per repetition
    per_shard = []
    for _ in range(args.reps):
        for name in policies:  # interleaved: a change in the host's load hits every policy
            busy.clear()
            comm.barrier()
            t0 = time.perf_counter()
            execute_plan(comm, plans[name], shard, combine=None)
            mine = [time.perf_counter() - t0, sum(busy.values())]
            every = comm.allgather_obj((mine, dict(busy)))
            spans[name].append(max(m[0] for m, _ in every))
            loads[name].append([m[1] for m, _ in every])
            per_shard += [t for _, b in every for t in b.values()]
    rows = []
    for name, plan in plans.items():
        load = [statistics.median(x) for x in zip(*loads[name])]
        rows.append(dict(plan=plan, policy=name, ranks=comm.size, shards=args.shards,
                         tokens=int(starts[-1]), chunk=args.chunk, reps=args.reps,
                         measured_s=statistics.median(spans[name]),
                         imbalance_planned=plan.imbalance,
                         imbalance_measured=max(load) / (sum(load) / len(load)) - 1))
    rate = sum(per_shard) / (len(per_shard) / len(sizes) * sum(sizes))  # s per token
    for row in rows:
        plan = row.pop("plan")
        row.update(predicted_s=plan.makespan * rate, lower_bound_s=plan.lower_bound * rate)
    if comm.rank == 0:
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            chunk = args.chunk or "a whole shard"
            print(f"# {args.shards} shards, sizes unit*(1+Pareto(1.5)), {int(starts[-1]):,} "
                  f"tokens, {args.order}-gram counting in chunks of {chunk}, "
                  f"{comm.size} ranks, {comm.library}")
            for n in comm.notes + ([note] if note else []):
                print(f"# note: {n}")
            print(table(rows))
    return 0


def table(rows) -> str:
    """The Markdown table of the docs: one line per policy, and the gain over block."""
    block = next((r["measured_s"] for r in rows if r["policy"] == "block"), None)
    lines = ["| policy | ranks | predicted (s) | measured (s) | lower bound (s) | "
             "imbalance planned | imbalance measured | block / this |",
             "|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gain = f"{block / r['measured_s']:.2f}x" if block else "-"
        lines.append(f"| {r['policy']} | {r['ranks']} | {r['predicted_s']:.3f} | "
                     f"{r['measured_s']:.3f} | {r['lower_bound_s']:.3f} | "
                     f"{100 * r['imbalance_planned']:.1f}% | "
                     f"{100 * r['imbalance_measured']:.1f}% | {gain} |")
    return "\n".join(lines)


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())
