"""Pipeline-parallel training of the LSTM LM, one stage per rank: ``python -m minipar.pipeline``.

    mpiexec -n 3 python -m minipar.pipeline --schedule 1f1b --micro-batches 8 --layers 3 \\
        --steps 5 --gantt runs/1f1b.png --trace runs/1f1b.json
    mpiexec -n 2 python -m minipar.pipeline --schedule gpipe --micro-batches 4 --check \\
        --dtype float64 --steps 1
    python -m minipar.pipeline --dry-run --stages 4 --micro-batches 8 --schedule 1f1b

The model's layers are split across the S = (number of ranks) stages (see
``minipar/training/pipeline_stages.py``); every rank computes the same plan (``pipeline_plan.py``)
and the dry run (``simulate.verify``, blocking sends) must accept it before anything runs:
a plan that could deadlock is refused with the simulator's message (``--naive-order`` builds
the 1F1B that sends before it receives, to see it). Reported per run:

    predicted bubble  (S-1)/(M+S-1) (equal stages), and the dry run of the plan with the
                      stage costs measured (mean over steps after the first) and the
                      calibrated alpha, beta
    measured bubble   1 - sum(compute) / (S * makespan) of the last step's real timeline

``--check`` compares the first step's loss and every stage's gradients with the one-process
model on the same batch (relative error; exit 1 above ``--tol``). ``--gantt`` draws the
predicted timeline above the measured one; ``--trace`` writes the Chrome trace.
"""

from __future__ import annotations

import argparse
import sys

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.training.pipeline_parallel import dry_run, train_pipeline

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mpiexec -n S python -m minipar.pipeline",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schedule", choices=["gpipe", "1f1b"], default="1f1b")
    ap.add_argument("--micro-batches", type=int, default=4, help="M (must divide --batch)")
    ap.add_argument("--naive-order", action="store_true",
                    help="1F1B sending before receiving (deadlocks; refused by the dry run)")
    ap.add_argument("--dry-run", action="store_true", help="only check and print the plan")
    ap.add_argument("--stages", type=int, help="S for --dry-run (default 4)")
    ap.add_argument("--data", default="builtin", help="builtin, synthetic, or a text file")
    ap.add_argument("--max-chars", type=int, default=50_000, help="text used (builtin/file)")
    ap.add_argument("--layers", type=int, help="LSTM layers (default: one per stage)")
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare step 1 with one process")
    ap.add_argument("--tol", type=float, help="--check tolerance (1e-10 float64, 1e-4 float32)")
    ap.add_argument("--gantt", help="PNG: predicted plan above the measured last step")
    ap.add_argument("--trace", help="Chrome trace JSON of the whole run")
    ap.add_argument("--show-comm", action="store_true", help="print every message")
    ap.add_argument("--timeout", type=float, help="seconds before a stalled call fails")
    return ap


def run(argv, state) -> int:
    args = _parser().parse_args(argv)
    if args.micro_batches < 1 or args.steps < 1:
        raise UserError("--micro-batches and --steps must be at least 1")
    if args.dry_run:
        return dry_run(args)
    if args.stages is not None:  # a run has one stage per rank: the count comes from mpiexec
        raise UserError(f"--stages is for --dry-run; to train on {args.stages} stages, run "
                        f"mpiexec -n {args.stages} python -m minipar.pipeline")
    return train_pipeline(args, launch.start(state, show_comm=args.show_comm,
                                             timeout=args.timeout))


def main(argv=None) -> int:
    return launch.run(run, argv)


if __name__ == "__main__":
    sys.exit(main())
