"""``mpiexec -n 4 python -m minipar.train``: data-parallel training, every message visible.

One training step, on every rank, reads top to bottom in ``train_step``:

    shard -> batch -> forward -> loss -> backward -> sync (communication) -> optimizer -> log

Each rank builds the same global batch, keeps its own rows of it (``--shard``), computes the
sum of its loss terms s_r, back-propagates s_r / n (n: loss terms in the whole global batch),
and the sync strategy (``--sync``) makes the replicas agree. ``python -m minipar.train``
without mpiexec runs the same code on one rank. ``--help`` lists every option.
"""

from __future__ import annotations

import math
import signal
import sys
import time

import numpy as np

from minipar import launch
from minipar.config import parse_args
from minipar.errors import UserError
from minipar.parallel.comm import init
from minipar.tasks import shard_batch
from minipar.train_setup import (evaluate, finish_run, save_checkpoint, setup, shard_rows)


class Divergence(UserError):
    """The loss or the gradients stopped being finite numbers."""


_stop = {"signal": None}


def _on_signal(signum, _frame):
    _stop["signal"] = signal.Signals(signum).name  # acted on at the next step boundary


def train_step(run, batch, state):
    """One step on this rank; returns (global loss per term, new recurrent state, comm s)."""
    comm, task, model, cfg = run.comm, run.task, run.model, run.cfg
    tracer = comm.tracer
    rows = shard_rows(run, batch)                                  # shard: every rank's rows
    mine = shard_batch(batch, rows[comm.rank])                     # batch: this rank's rows
    n = sum(task.count(shard_batch(batch, r)) for r in rows)       # loss terms, all ranks
    with tracer.compute("forward"):
        loss_sum, count, state = task.loss(model, mine, state)     # forward + loss (a sum)
    run.opt.zero_grad()
    if count:
        with tracer.compute("backward"):
            (loss_sum * (1.0 / n)).backward()                      # my share of d(mean)/dw
    t0 = time.perf_counter()
    with comm.phase("sync"):
        run.sync.step(run.opt, run.clip, count, n)                 # sync, clip, optimizer step
    flags = np.array([loss_sum.item() if count else 0.0, _stop["signal"] is not None,
                      not math.isfinite(run.last_norm)], dtype=np.float64)
    with comm.phase("metrics"):
        comm.allreduce(flags)                                      # global loss, stop requests
    comm_s = time.perf_counter() - t0
    if flags[2] or not math.isfinite(flags[0]):
        raise Divergence(f"the loss or gradients became non-finite at step {run.step + 1} "
                         f"(loss {flags[0] / n:.4g}); lower --lr (now {run.tcfg.lr}) or set "
                         f"--clip; the last good checkpoint is kept in {run.run_dir}")
    run.stop_requested = bool(flags[1])
    return flags[0] / n, n, state, comm_s


def train_loop(run) -> None:
    comm, cfg = run.comm, run.cfg
    state, batches = run.state, None
    t_start = time.perf_counter()
    while run.step < run.total_steps:
        epoch, pos = divmod(run.step, run.per_epoch)
        if batches is None or pos == 0:
            if pos == 0:
                state = None  # each epoch starts the streams again
            batches = run.task.batches(run.data.train, run.tcfg, epoch)
            for _ in range(pos):  # resuming mid-epoch: skip what was already seen
                next(batches)
        comm.set_step(run.step + 1)
        t0 = time.perf_counter()
        loss, tokens, state, comm_s = train_step(run, next(batches), state)
        dt = time.perf_counter() - t0
        run.step += 1
        run.state = state
        row = {"step": run.step, "epoch": epoch, "loss": loss, "tokens": tokens,
               "tokens_per_s": tokens / dt, "step_s": dt, "comm_s": comm_s}
        run.log.write(row)
        run.tokens += tokens
        if comm.rank == 0 and not cfg.quiet and (run.step % cfg.log_every == 0
                                                  or run.step == run.total_steps):
            recent = run.log.rows[-cfg.log_every:]
            share = sum(r["comm_s"] for r in recent) / max(sum(r["step_s"] for r in recent), 1e-9)
            tps = sum(r["tokens"] for r in recent) / max(sum(r["step_s"] for r in recent), 1e-9)
            print(f"step {run.step:>5}/{run.total_steps}  loss {loss:.4f}  "
                  f"{tps:,.0f} tok/s  comm {100 * share:.0f}%  "
                  f"{time.perf_counter() - t_start:.1f} s", flush=True)
        if cfg.eval_every and run.step % cfg.eval_every == 0 and run.step < run.total_steps:
            run.evals.append((run.step, evaluate(run)["loss"]))
        if run.stop_requested:
            break
        if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
            save_checkpoint(run)
    run.train_s = time.perf_counter() - t_start


def _main(argv, state) -> int:
    if launch.launcher_rank() != 0 and any(a in ("-h", "--help") for a in argv):
        return 0  # help is printed once, by rank 0
    cfg = parse_args(argv)
    timeout = cfg.comm_timeout if cfg.comm_timeout > 0 else None
    comm = init(trace=True, show_comm=cfg.show_comm, timeout=timeout,
                check_collectives=cfg.check_collectives)
    state["comm"] = comm
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    if cfg.model == "ngram":
        from minipar.ngram_parallel import run_ngram
        return run_ngram(comm, cfg)
    run = launch.agree(comm, setup, comm, cfg)
    train_loop(run)
    if run.stop_requested:
        path = save_checkpoint(run)
        if comm.rank == 0:
            print(f"stopped by {_stop['signal'] or 'a signal on another rank'} at step "
                  f"{run.step}; checkpoint {path}; continue with --resume {run.run_dir}",
                  flush=True)
        return 128 + signal.SIGTERM if _stop["signal"] == "SIGTERM" else 130
    finish_run(run)
    return 0


def main(argv=None) -> int:
    return launch.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
