"""Overlap against none: the same training run with and without ``--overlap``.

    python -m minipar.bench overlap [--ranks 2] [--steps 40] [--repeats 3]
        [--configs "lstm;lstm --layers 2 --bucket-kb 256;mlp"] [--allreduce ring,mpi] [--json]

Each configuration (``minipar.train`` options) runs with each ``--allreduce`` algorithm,
without and with ``--overlap``, ``--repeats`` times, alternating (so slow moments of the
machine fall on both). A cell is the median tokens/s of its runs (``summary.json``:
global tokens over training wall time); the ratio is overlap over none. With --overlap a
bucket's allreduce starts when its gradients are ready and moves on between the backward
pass's steps (docs/communication.md); it pays when some rank would otherwise wait.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics

from minipar.bench.scaling import run_point

CONFIGS = "lstm;lstm --layers 2 --bucket-kb 256;mlp"


def measure(config: str, algorithm: str, ranks: int, steps: int, repeats: int) -> dict:
    model, *rest = shlex.split(config)
    extra = [a for a in rest if a != "--model"] + ["--allreduce", algorithm]
    speeds = {False: [], True: []}
    for _ in range(repeats):
        for overlap in (False, True):
            args = extra + (["--overlap"] if overlap else [])
            speeds[overlap].append(run_point(model, ranks, steps, args)["tokens_per_s"])
    off, on = (statistics.median(speeds[k]) for k in (False, True))
    return {"config": config, "allreduce": algorithm, "ranks": ranks, "none": off,
            "overlap": on, "ratio": on / off, "runs": {str(k): v for k, v in speeds.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench overlap", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configs", default=CONFIGS,
                    help=f"minipar.train options per configuration, ';' between them "
                         f"(first word: the model; default {CONFIGS!r})")
    ap.add_argument("--allreduce", default="ring,mpi")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.ranks < 2 or a.steps < 1 or a.repeats < 1:
        ap.error("--ranks must be at least 2, --steps and --repeats at least 1")
    rows = []
    for config in [c.strip() for c in a.configs.split(";") if c.strip()]:
        for algo in [x.strip() for x in a.allreduce.split(",") if x.strip()]:
            rows.append(measure(config, algo, a.ranks, a.steps, a.repeats))
            r = rows[-1]
            print(f"  {config} / {algo}: {r['none']:,.0f} -> {r['overlap']:,.0f} tok/s",
                  flush=True)
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"\n| configuration ({a.ranks} ranks, {a.steps} steps) | allreduce | tokens/s, none "
          f"| tokens/s, overlap | overlap / none |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['allreduce']} | {r['none']:,.0f} | {r['overlap']:,.0f} | "
              f"{r['ratio']:.2f}x |")
    return 0
