"""Pipeline-parallel training of the LSTM LM, one stage per rank: ``python -m minipar.pipeline``.

    mpiexec -n 3 python -m minipar.pipeline --schedule 1f1b --micro-batches 8 --layers 3 \\
        --steps 5 --gantt runs/1f1b.png --trace runs/1f1b.json
    mpiexec -n 2 python -m minipar.pipeline --schedule gpipe --micro-batches 4 --check \\
        --dtype float64 --steps 1
    python -m minipar.pipeline --dry-run --stages 4 --micro-batches 8 --schedule 1f1b

The model's layers are split across the S = (number of ranks) stages (see
``minipar/parallel/pipeline.py``); every rank computes the same plan (``pipeline_plan.py``)
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
import math
import sys
import time

from minipar import launch
from minipar import threads
from minipar.errors import UserError
from minipar.parallel.schedule import PlanError

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


def _plan(args, S: int, nbytes: int = 0, fwd=1.0, bwd=2.0):
    """The plan every rank builds; ``verify`` raises DeadlockError for a bad one."""
    from minipar.parallel.pipeline_plan import gpipe, one_f_one_b
    from minipar.parallel.simulate import DeadlockError, verify

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


def _dry_run(args) -> int:
    from minipar.parallel.pipeline_plan import in_flight

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
    from minipar.data.corpus import load_corpus
    from minipar.data.synthetic import MarkovSource

    if args.data == "synthetic":
        return MarkovSource(order=2, vocab_size=16, seed=args.seed).corpus(
            args.batch * (args.seq * max(args.steps, 1) + 1) + 1)
    return load_corpus(None if args.data == "builtin" else args.data, max_chars=args.max_chars)


def _windows(ids, batch: int, seq: int, steps: int):
    """``steps`` full (x, y) windows of truncated BPTT, cycling over the stream."""
    from minipar.data.batching import LMBatches

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


def _train(args, comm) -> int:
    import numpy as np

    from minipar import backend as B
    from minipar.models.lstm_lm import LSTMLM
    from minipar.optim import Adam
    from minipar.parallel import costmodel
    from minipar.parallel.pipeline import (PipelineStage, check_against, measured_bubble,
                                           run_step, split_rows, stage_costs)
    from minipar.parallel.simulate import simulate

    S, r = comm.size, comm.rank
    L = args.layers or S
    split_rows(args.batch, args.micro_batches)
    nbytes = (args.batch // args.micro_batches) * args.seq * args.hidden \
        * np.dtype(args.dtype).itemsize
    plan = _plan(args, S, nbytes)       # the plan that will run, refused here if it can hang
    B.set_default_dtype(args.dtype)
    corpus = _data(args)
    windows, n_windows = _windows(corpus.train, args.batch, args.seq, args.steps)
    B.seed(args.seed)
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
            from minipar.parallel.gantt import plot_compare
            plot_compare(pred.spans, flat, args.gantt, titles=(
                f"plan {args.schedule}, S={S}, M={args.micro_batches}: predicted bubble "
                f"{100 * pred.bubble:.1f}%", f"measured (last step): bubble {100 * bub:.1f}%"))
            print(f"wrote {args.gantt}")
    comm.report(chrome=args.trace)
    if r == 0 and args.trace:
        print(f"wrote {args.trace}")
    return result


def run(argv, state) -> int:
    note = threads.NOTE
    args = _parser().parse_args(argv)
    if args.micro_batches < 1 or args.steps < 1:
        raise UserError("--micro-batches and --steps must be at least 1")
    if args.dry_run:
        return _dry_run(args)
    from minipar.parallel.comm import init

    comm = init(trace=True, show_comm=args.show_comm, timeout=args.timeout)
    if note:
        comm.notes.append(note)
    state["comm"] = comm  # a fault on one rank now ends every rank (launch.run)
    return _train(args, comm)


def main(argv=None) -> int:
    return launch.run(run, argv)


if __name__ == "__main__":
    sys.exit(main())
