"""The training loop: one step on every rank, and the steps of a run.

One training step reads top to bottom in ``train_step``:

    shard -> batch -> forward -> loss -> backward -> sync (communication) -> optimizer -> log

Each rank builds the same global batch, keeps its own rows of it (``--shard``), computes the
sum of its loss terms s_r, back-propagates s_r / n (n: loss terms in the whole global batch),
and the sync strategy (``--sync``) makes the replicas agree.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np

from minipar.comm.collectives import allreduce_shm
from minipar.core.errors import Divergence
from minipar.training import faults
from minipar.training.evaluate import evaluate
from minipar.training.progress import TrainProgress
from minipar.training.resume import save_checkpoint
from minipar.training.run_state import Run, shard_rows
from minipar.training.tasks import learning_rate, shard_batch

# A cross-entropy of L nats per term gives the truth probability e^-L; past ~745 no float64
# holds it, so a mean loss above LOSS_LIMIT means the run has diverged even if still finite.
LOSS_LIMIT = 1000.0

_stop = {"signal": None}
_STOP_CODE = {"SIGINT": 1, "SIGTERM": 1000}  # summed over ranks by the metrics allreduce


def _on_signal(signum, _frame):
    """First SIGINT/SIGTERM: stop at the next step boundary, agreed through the metrics
    allreduce, with a checkpoint. A second one: stop now (KeyboardInterrupt)."""
    if _stop["signal"] is not None:
        raise KeyboardInterrupt
    _stop["signal"] = signal.Signals(signum).name


def train_step(run: Run, batch, state):
    """One step on this rank; returns (global loss per term, loss terms, new recurrent
    state, seconds inside communication calls, seconds of the optimizer step and clipping)."""
    comm, task, model = run.comm, run.task, run.model
    tracer = comm.tracer
    rows = shard_rows(run, batch)                                  # shard: every rank's rows
    mine = shard_batch(batch, rows[comm.rank])                     # batch: this rank's rows
    n = sum(task.count(shard_batch(batch, r)) for r in rows)       # loss terms, all ranks
    with tracer.compute("forward"):
        loss_sum, count, state = task.loss(model, mine, state)     # forward + loss (a sum)
    run.local_terms += count
    run.opt.zero_grad()
    if count:
        with tracer.compute("backward"):
            (loss_sum * (1.0 / n)).backward()                      # my share of d(mean)/dw
    skip = False
    if faults.ACTIVE:                                              # planted faults (tests)
        skip = faults.hit(comm.rank, run.step + 1, model.parameters())
    t0 = time.perf_counter()
    first = len(tracer.events)
    # this rank's loss sum and stop request, summed over the ranks: in the last gradient
    # bucket when the sync allows it (one collective fewer a step), else on their own below
    flags = np.array([loss_sum.item() if count else 0.0, _STOP_CODE.get(_stop["signal"], 0),
                      0.0], dtype=np.float64)
    ride = (getattr(run.sync, "carries_metrics", False)
            and not (faults.ACTIVE and faults.skips_collectives()))
    with comm.phase("sync"):                                       # sync, clip, optimizer step
        if ride:
            summed = run.sync.step(run.opt, run.clip, count, n, extra=flags[:2])
        else:
            run.sync.step(run.opt, run.clip, count, n)
    sync_s = time.perf_counter() - t0
    flags[2] = not math.isfinite(run.last_norm)
    if ride:  # the same norm on every rank: it comes from the summed gradients
        flags[:2] = summed
    elif not skip:
        with comm.phase("metrics"):
            if run.cfg.allreduce == "shm":  # its sleeping waits serve these numbers too
                allreduce_shm(comm, flags)                         # global loss, stop requests
            else:
                comm.allreduce(flags)
    calls = tracer.events[first:]  # this step's communication calls
    comm_s = _inside_calls(calls, after=t0)
    optim_s = max(sync_s - _inside_calls(calls, after=t0, before=t0 + sync_s), 0.0)
    if flags[2] or not flags[0] / n <= LOSS_LIMIT:                # NaN fails "<=" too
        what = "gradients" if flags[2] else "loss"
        hint = "" if run.cfg.clip else " or set --clip"
        raise Divergence(f"the {what} diverged at step {run.step + 1} (loss {flags[0] / n:.4g} "
                         f"per term); lower --lr (now {run.tcfg.lr}){hint}; the last good "
                         f"checkpoint is kept in {run.run_dir}")
    if flags[1]:  # summed codes: 1000 and more means some rank got SIGTERM
        run.stop_requested = "SIGTERM" if flags[1] >= 1000 else "SIGINT"
    return flags[0] / n, n, state, comm_s, optim_s


def _inside_calls(events, after: float = -math.inf, before: float = math.inf) -> float:
    """Seconds inside the top-level communication calls among ``events`` (ending before
    ``before``), counted from ``after`` on: what a progress line calls "comm". A bucket's
    allreduce started during backward (--overlap) counts only from the end of backward:
    the time before that was spent computing, with the messages moving underneath."""
    return sum(max(e.t1 - max(e.t0, after), 0.0) for e in events
               if e.depth == 0 and e.kind != "compute" and e.t1 <= before)


def train_loop(run: Run) -> None:
    comm, cfg = run.comm, run.cfg
    state, batches = run.state, None
    t_start = time.perf_counter()
    progress = TrainProgress(run.total_steps, cfg.log_every)
    while run.step < run.total_steps:
        epoch, pos = divmod(run.step, run.per_epoch)
        if batches is None or pos == 0:
            if pos == 0:
                state = None  # each epoch starts the streams again
            batches = run.task.batches(run.data.train, run.tcfg, epoch)
            for _ in range(pos):  # resuming mid-epoch: skip what was already seen
                next(batches)
        comm.set_step(run.step + 1)
        run.opt.lr = learning_rate(run.tcfg, run.step, run.total_steps)  # --lr-schedule
        t0 = time.perf_counter()
        loss, tokens, state, comm_s, optim_s = train_step(run, next(batches), state)
        dt = time.perf_counter() - t0
        run.step += 1
        run.state = state
        row = {"step": run.step, "epoch": epoch, "loss": loss, "lr": run.opt.lr,
               "tokens": tokens,
               "tokens_per_s": tokens / dt, "step_s": dt, "comm_s": comm_s, "optim_s": optim_s}
        run.log.write(row)
        run.tokens += tokens
        if comm.rank == 0 and not cfg.quiet:
            progress.show(run.step, run.log.rows)
        if cfg.eval_every and run.step % cfg.eval_every == 0 and run.step < run.total_steps:
            run.evals.append((run.step, evaluate(run)["loss"]))
        if run.stop_requested:
            if comm.rank == 0 and not cfg.quiet:
                progress.interrupted()
            break
        if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
            save_checkpoint(run)
    run.train_s = time.perf_counter() - t_start


def watch_signals() -> None:
    """SIGINT and SIGTERM stop the run at the next step boundary (see ``_on_signal``)."""
    _stop["signal"] = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
