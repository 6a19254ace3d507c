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
import sys

from minipar.comm import launch
from minipar.training.grid_jobs import make_jobs, run_grid


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


def run(argv, state) -> int:
    args = _parser().parse_args(argv)
    make_jobs(args)  # option errors before MPI starts
    return run_grid(args, launch.start(state))


def main(argv=None) -> int:
    return launch.run(run, argv)


if __name__ == "__main__":
    sys.exit(main())
