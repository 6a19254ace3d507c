"""``mpiexec -n 4 python -m minipar.train``: data-parallel training, every message visible.

One training step, on every rank, reads top to bottom in
:func:`minipar.training.loop.train_step`, each line a call into one room:

    rows  = shard_rows(run, batch)          training/run_state.py shard: every rank's rows
    mine  = shard_batch(batch, rows[r])     training/tasks.py     batch: this rank's rows
    loss  = task.loss(model, mine, state)   models/ on nn/        forward + loss (a sum s_r)
    (loss / n).backward()                   autograd/             backward: s_r / n
    run.sync.step(opt, clip, count, n)      training/sync.py      sync over comm/, clip, step
    comm.allreduce(flags)                   comm/                 global loss, stop requests
    run.log.write(row)                      training/run_dir.py   log

Each rank builds the same global batch, keeps its own rows of it (``--shard``), computes the
sum of its loss terms s_r, back-propagates s_r / n (n: loss terms in the whole global batch),
and the sync strategy (``--sync``) makes the replicas agree. ``python -m minipar.train``
without mpiexec runs the same code on one rank. ``--help`` lists every option.
"""

from __future__ import annotations

import signal
import sys

import numpy as np

from minipar.comm import launch
from minipar.core.launcher import launcher_rank
from minipar.training import faults
from minipar.training.config import parse_args
from minipar.training.evaluate import finish_run
from minipar.training.loop import train_loop, watch_signals
from minipar.training.ngram_train import run_ngram
from minipar.training.resume import save_checkpoint
from minipar.training.run import setup


def _main(argv, state) -> int:
    if launcher_rank() != 0 and any(a in ("-h", "--help") for a in argv):
        return 0  # help is printed once, by rank 0
    faults.check()
    cfg = parse_args(argv)
    comm = launch.start(state, show_comm=cfg.show_comm, check_collectives=cfg.check_collectives,
                        timeout=cfg.comm_timeout if cfg.comm_timeout > 0 else None)
    watch_signals()
    if cfg.model == "ngram":
        return run_ngram(comm, cfg)
    # Overflow in a diverging run is reported once, by the divergence check, not as
    # NumPy warnings on every rank (a saturating exp in a sigmoid is not an error).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        run = launch.agree(comm, setup, comm, cfg)
        train_loop(run)
        if run.stop_requested:
            path = save_checkpoint(run)
            if comm.rank == 0:
                print(f"stopped by {run.stop_requested} at step {run.step}; checkpoint "
                      f"{path}; continue with --resume {run.run_dir}", flush=True)
            return 128 + getattr(signal, run.stop_requested)
        finish_run(run)
    return 0


def main(argv=None) -> int:
    return launch.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
