"""Pipeline-parallel training of the LSTM LM: ``python -m minipar.pipeline`` runs it.

Every rank builds the same plan (GPipe or 1F1B, :mod:`minipar.planning.pipeline_plan`) and
checks it with the dry run before any message is sent; each rank then holds one stage of the
model (:mod:`minipar.training.pipeline_stages`) and follows its actions, sending activations
forward and gradients back through the traced communicator.
"""

from __future__ import annotations

import math
import time

import numpy as np

from minipar.core import backend
from minipar.core.errors import UserError
from minipar.data.batching import LMBatches
from minipar.data.corpus import load_corpus
from minipar.data.synthetic import MarkovSource
from minipar.models.lstm_lm import LSTMLM
from minipar.nn.optim import Adam
from minipar.planning import costmodel
from minipar.planning.actions import PlanError
from minipar.planning.gantt import plot_compare
from minipar.planning.pipeline_plan import gpipe, in_flight, one_f_one_b
from minipar.planning.simulate import DeadlockError, simulate, verify
from minipar.training.pipeline_stages import (
    PipelineStage,
    check_against,
    measured_bubble,
    run_step,
    split_rows,
    stage_costs,
)


def _plan(args, S: int, nbytes: int = 0, fwd=1.0, bwd=2.0):
    """The plan every rank builds; ``verify`` raises DeadlockError for a bad one."""

    if args.schedule == "gpipe":
        plan = gpipe(S, args.micro_batches, fwd, bwd, nbytes)
    else:
        plan = one_f_one_b(S, args.micro_batches, fwd, bwd, nbytes,
                           pair_exchange=not args.naive_order)
    try:
        verify(plan)  # rendezvous sends: if this passes, any MPI buffering runs it
    except DeadlockError as exc:
        raise PlanError(f"the dry run refuses this plan: {exc}") from None
    return plan


def dry_run(args) -> int:

    S = args.stages or 4
    plan = _plan(args, S)
    print(plan.summary())
    for r, acts in enumerate(plan.actions):
        print(f"rank {r}: " + " ".join(a.label for a in acts))
    print(f"dry run: no deadlock. bubble (S-1)/(M+S-1) = "
          f"{100 * plan.meta['bubble (equal stages)']:.1f}%; micro-batches in flight per "
          f"stage {in_flight(plan)}")
    return 0


def _data(args):

    if args.data == "synthetic":
        return MarkovSource(order=2, vocab_size=16, seed=args.seed).corpus(
            args.batch * (args.seq * max(args.steps, 1) + 1) + 1)
    return load_corpus(None if args.data == "builtin" else args.data, max_chars=args.max_chars)


def _windows(ids, batch: int, seq: int, steps: int):
    """``steps`` full (x, y) windows of truncated BPTT, cycling over the stream."""

    full = [(x, y) for x, y in LMBatches(ids, batch, seq) if x.shape[1] == seq]
    if not full:
        raise UserError(f"no full window of --seq {seq}: use more data or a shorter --seq")
    return [full[k % len(full)] for k in range(steps)], len(full)


def _untraced(comm, fn, *a):
    """Run a reporting collective without recording it (it is not part of the training)."""
    tr = comm.tracer
    saved = tr.enabled, tr.show
    tr.set(enabled=False, show=False)
    try:
        return fn(*a)
    finally:
        tr.set(*saved)


def train_pipeline(args, comm) -> int:
    S, r = comm.size, comm.rank
    L = args.layers or S
    split_rows(args.batch, args.micro_batches)
    nbytes = (args.batch // args.micro_batches) * args.seq * args.hidden \
        * np.dtype(args.dtype).itemsize
    plan = _plan(args, S, nbytes)       # the plan that will run, refused here if it can hang
    backend.set_default_dtype(args.dtype)
    corpus = _data(args)
    windows, n_windows = _windows(corpus.train, args.batch, args.seq, args.steps)
    backend.seed(args.seed)
    model = LSTMLM(len(corpus.vocab), args.embed, args.hidden, num_layers=L)
    stage = PipelineStage(model, r, S)  # checks L >= S
    opt = Adam(stage.parameters(), lr=args.lr)
    if r == 0:
        print(f"pipeline {args.schedule}: {S} stages, {args.micro_batches} micro-batches of "
              f"{args.batch // args.micro_batches} rows x {args.seq} steps, LSTM {L} layers "
              f"(H={args.hidden}), {corpus.summary()}; {n_windows} windows; {args.dtype}")
        for note in comm.notes:
            print(f"note: {note}")
        print("dry run (blocking sends): no deadlock")
    result, mine = 0, []  # mine: (forward, backward) seconds per micro-batch, each step
    for step, (x, y) in enumerate(windows):
        comm.set_step(step)
        _untraced(comm, comm.barrier)   # line the ranks up: the step's spans share t = 0
        t0 = time.perf_counter()
        loss, spans = run_step(comm, stage, plan, x, y, origin=t0)
        mine.append(stage_costs(spans))
        if step == 0:
            if args.check:
                err = check_against(model, stage, x, y, loss)
                errs = _untraced(comm, comm.allgather_obj, err)
                tol = args.tol or (1e-10 if args.dtype == "float64" else 1e-4)
                worst = max(max(e["loss"], e["grad"]) for e in errs)
                if r == 0:
                    print(f"check vs one process: loss rel err "
                          f"{max(e['loss'] for e in errs):.3g}, gradients max rel err "
                          f"{max(e['grad'] for e in errs):.3g} over "
                          f"{sum(e['params'] for e in errs)} tensors: "
                          f"{'ok' if worst <= tol else 'FAILED'} (tol {tol:g})")
                result = 0 if worst <= tol else 1
        opt.step()
        stage.zero_grad()
        total = comm.allreduce(np.array([loss]))[0]  # only the last stage has a loss
        every = _untraced(comm, comm.gather_obj, spans, 0)
        if r == 0:
            span, bub = measured_bubble([s for part in every for s in part], S)
            print(f"step {step + 1} loss {total:.4f} (ppl {math.exp(total):.2f}) "
                  f"time {1e3 * span:.1f} ms, measured bubble {100 * bub:.1f}%", flush=True)
    # The first step pays one-off costs (allocation, BLAS start-up): predict from the rest.
    steady = mine[1:] or mine
    costs = _untraced(comm, comm.allgather_obj, tuple(
        sum(c[i] for c in steady) / len(steady) for i in (0, 1)))
    params = costmodel.load()
    pred = simulate(_plan(args, S, nbytes, [c[0] for c in costs], [c[1] for c in costs]),
                    mode="eager", params=params)
    if r == 0:
        flat = [s for part in every for s in part]
        span, bub = measured_bubble(flat, S)
        print(f"bubble: formula (S-1)/(M+S-1) {100 * plan.meta['bubble (equal stages)']:.1f}%, "
              f"plan with measured stage costs {100 * pred.bubble:.1f}% "
              f"(makespan {1e3 * pred.makespan:.2f} ms), measured {100 * bub:.1f}% "
              f"(makespan {1e3 * span:.2f} ms, last step)")
        print("stage costs (ms per micro-batch, forward/backward): " + ", ".join(
            f"{1e3 * f:.2f}/{1e3 * b:.2f}" for f, b in costs))
        if args.gantt:
            plot_compare(pred.spans, flat, args.gantt, titles=(
                f"plan {args.schedule}, S={S}, M={args.micro_batches}: predicted bubble "
                f"{100 * pred.bubble:.1f}%", f"measured (last step): bubble {100 * bub:.1f}%"))
            print(f"wrote {args.gantt}")
    comm.report(chrome=args.trace)
    if r == 0 and args.trace:
        print(f"wrote {args.trace}")
    return result
