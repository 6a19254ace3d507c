"""Print (and draw) a static plan: ``python -m minipar.schedule``.

    python -m minipar.schedule --costs 5,3,8,2,7,4 -p 3 --policy lpt
    python -m minipar.schedule --heavy-tail 64 -p 4 --policy all
    python -m minipar.schedule --costs 3,2,4,1 --deps "2:0,1;3:2" -p 2 --plot dag.png
    python -m minipar.schedule --pipeline 1f1b --stages 4 --micro-batches 8 --plot 1f1b.png

Each plan is printed with its makespan, its lower bound max(total/p, largest, critical
path) and its imbalance; the dry run checks it cannot deadlock before anything runs.
"""

from __future__ import annotations

import argparse
import sys


from minipar.core.errors import UserError
from minipar.data.synthetic import heavy_tail
from minipar.planning.policies import POLICIES, make_plan
from minipar.planning.actions import PlanError
from minipar.planning.simulate import simulate
from minipar.planning.pipeline_plan import in_flight, pipeline_plan
from minipar.planning.gantt import plot_plan


def _parse_deps(text: str) -> dict[int, list[int]]:
    """"2:0,1;3:2" -> {2: [0, 1], 3: [2]} (task 2 needs tasks 0 and 1, ...)."""
    deps = {}
    try:
        for item in filter(None, (s.strip() for s in text.split(";"))):
            v, us = item.split(":")
            deps[int(v)] = [int(u) for u in us.split(",") if u.strip()]
    except ValueError:
        raise UserError(f"--deps {text!r}: write it as 'task:needed,needed;task:needed'") from None
    return deps


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m minipar.schedule", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--costs", help="comma-separated task costs, e.g. 5,3,8")
    src.add_argument("--heavy-tail", type=int, metavar="N", help="N Pareto-distributed costs")
    ap.add_argument("--seed", type=int, default=0, help="seed for --heavy-tail")
    ap.add_argument("-p", "--ranks", type=int, default=4, help="number of ranks")
    ap.add_argument("--policy", default="lpt", choices=[*POLICIES, "list", "all"])
    ap.add_argument("--deps", default="", help="dependencies 'task:needed,...;...' (list policy)")
    ap.add_argument("--pipeline", choices=["gpipe", "1f1b"], help="a pipeline plan instead")
    ap.add_argument("--stages", type=int, default=4)
    ap.add_argument("--micro-batches", type=int, default=8)
    ap.add_argument("--fwd", type=float, default=1.0, help="forward cost per micro-batch")
    ap.add_argument("--bwd", type=float, default=2.0, help="backward cost per micro-batch")
    ap.add_argument("--mode", default="rendezvous", choices=["rendezvous", "eager"],
                    help="send semantics of the predicted timeline (deadlock is always "
                         "checked with rendezvous sends)")
    ap.add_argument("--actions", action="store_true", help="also list every rank's actions")
    ap.add_argument("--plot", help="write a Gantt chart PNG here")
    return ap


def _show(plan, args) -> None:
    strict = simulate(plan, mode="rendezvous")  # rejects a plan that could deadlock
    res = strict if args.mode == "rendezvous" else simulate(plan, mode="eager")
    print(plan.summary())
    if args.actions:
        for r, acts in enumerate(plan.actions):
            print(f"rank {r}: " + " ".join(a.label for a in acts))
    print(f"dry run: no deadlock; with {args.mode} sends makespan {res.makespan:.4g}, "
          f"idle {100 * res.bubble:.1f}%, {res.messages} messages")
    print()


def run(argv=None) -> int:
    args = _parser().parse_args(argv)
    plans = []
    if args.pipeline:
        plan = pipeline_plan(args.pipeline, args.stages, args.micro_batches,
                             fwd=args.fwd, bwd=args.bwd)
        plans.append(plan)
        print(f"bubble (S-1)/(M+S-1) = {plan.meta['bubble (equal stages)']:.3f}; "
              f"micro-batches in flight per stage: {in_flight(plan)}")
    else:
        if args.heavy_tail:
            costs = heavy_tail(args.heavy_tail, args.seed)
        elif args.costs:
            try:
                costs = [float(c) for c in args.costs.split(",") if c.strip()]
            except ValueError:
                raise UserError(f"--costs {args.costs!r}: give numbers separated by "
                                "commas") from None
        else:
            raise UserError("give --costs, --heavy-tail N or --pipeline")
        deps = _parse_deps(args.deps)
        names = [*POLICIES, "list"] if args.policy == "all" else [args.policy]
        if deps:  # the other policies would ignore dependencies, so only list scheduling
            names = ["list"]
        for name in names:
            plans.append(make_plan(costs, args.ranks, name, deps))
    for plan in plans:
        _show(plan, args)
    if args.plot:
        print(f"wrote {plot_plan(plans[-1], args.plot, mode=args.mode)}")
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except (UserError, PlanError) as exc:
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
