"""Data-parallel scaling: tokens/s of ``minipar.train`` on 1, 2, 4 ranks, and efficiency.

    python -m minipar.bench scaling [--models lstm,mlp] [--ranks 1,2,4] [--steps 60] [--json]

Each point is one ``mpiexec -n P python -m minipar.train --model M --steps S`` run with the
model's default size; its ``summary.json`` gives tokens/s (global tokens over training wall
time) and each rank's communication seconds from the trace. Parallel efficiency on p ranks:

    E(p) = (tokens/s on p ranks) / (p * tokens/s on 1 rank)

The global batch is the same for every p (strong scaling: each rank gets 1/p of the rows).
On a machine with c cores, E(p) for p > c is bounded by c / p: ranks share cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from minipar.comm import launch


def run_point(model: str, ranks: int, steps: int, extra: list[str]) -> dict:
    out = tempfile.mkdtemp(prefix=f"minipar-scaling-{model}-{ranks}-")
    cmd = [launch.find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "minipar.train",
           "--model", model,
           "--steps", str(steps), "--out", out, "--quiet", "--sample-chars", "0", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        s = json.load(f)
    shutil.rmtree(out, ignore_errors=True)
    comm = max(r["comm_s"] for r in s["per_rank"])
    return {"model": model, "ranks": ranks, "steps": s["steps"], "tokens_per_s": s["tokens_per_s"],
            "train_s": s["train_s"], "comm_share": comm / s["train_s"] if s["train_s"] else 0.0,
            "command": f"mpiexec -n {ranks} python -m minipar.train --model {model} "
                       f"--steps {steps} {' '.join(extra)}".strip()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench scaling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lstm,mlp")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("extra", nargs="*", help="more minipar.train options (after --)")
    a = ap.parse_args(argv)
    rows = []
    for model in a.models.split(","):
        base = None
        for p in (int(x) for x in a.ranks.split(",")):
            row = run_point(model, p, a.steps, a.extra)
            base = row["tokens_per_s"] if p == 1 else base
            row["efficiency"] = row["tokens_per_s"] / (p * base) if base else None
            rows.append(row)
            if not a.json:
                eff = f"{row['efficiency']:.2f}" if row["efficiency"] is not None else "-"
                print(f"{model:>5} p={p}  {row['tokens_per_s']:>10,.0f} tok/s  efficiency {eff:>5}"
                      f"  comm {100 * row['comm_share']:.0f}%  ({row['train_s']:.1f} s)",
                      flush=True)
    if a.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
