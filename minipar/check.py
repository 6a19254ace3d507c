"""Grade a student's implementation: ``python -m minipar.check TASK module:function``.

    python -m minipar.check ring_allreduce my_ring:allreduce             # under mpiexec, p=1..4
    python -m minipar.check tree_broadcast my_tree.py:broadcast --ranks 2,3,4,5
    python -m minipar.check lpt my_lpt:lpt --json                        # for an autograder
    python -m minipar.check --list                                       # tasks, references

Collective tasks run the function under ``mpiexec -n p`` for each p in --ranks, on many
lengths (0, 1, odd, even, around p and 2p, 100003) and dtypes, against the exact answer;
read the communication from the trace (no MPI collective inside, every message received,
the algorithm's pattern); and put a deadline on every wait (--timeout), so a deadlock
becomes a failed check naming the ranks and calls that hung. The other tasks run in this
process against minipar's own implementation, each case under an alarm.

Output: one PASS/FAIL line per check with what is wrong, hints that tie failures together
(e.g. "right only when the number of ranks is a power of two"), and the score; ``--json``
prints the same as one JSON object. Exit status 0 when every check passes, 1 otherwise,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

from minipar.check_report import Report
from minipar.errors import UserError


@dataclass(frozen=True)
class Task:
    name: str
    kind: str          # "mpi": graded under mpiexec; "local": in this process
    signature: str
    reference: str     # minipar's own implementation, which passes
    stub: str          # the assignment to fill in
    about: str


TASKS = {t.name: t for t in [
    Task("allreduce", "mpi", "f(comm, buf) -> sums buf over the ranks, in place",
         "minipar.parallel.collectives:allreduce_ring", "minipar.assignments.ring_allreduce",
         "any allreduce written with point-to-point messages (what --allreduce accepts)"),
    Task("ring_allreduce", "mpi", "f(comm, buf) -> sums buf over the ranks, in place",
         "minipar.parallel.collectives:allreduce_ring", "minipar.assignments.ring_allreduce",
         "Task 5.1: the ring allreduce (reduce-scatter, then allgather around the ring)"),
    Task("broadcast", "mpi", "f(comm, buf, root) -> root's buf everywhere, in place",
         "minipar.parallel.collectives:broadcast_tree", "minipar.assignments.tree_broadcast",
         "any broadcast written with point-to-point messages"),
    Task("tree_broadcast", "mpi", "f(comm, buf, root) -> root's buf everywhere, in place",
         "minipar.parallel.collectives:broadcast_tree", "minipar.assignments.tree_broadcast",
         "Task 5.2: the binomial-tree broadcast (ceil(log2 p) rounds)"),
    Task("kneser_ney", "local", "f(a, order) -> ((D1, D2, D3), warning or None)",
         "minipar.models.kneser_ney:estimate_discounts", "minipar.assignments.kneser_ney",
         "Task 2.1: the modified Kneser-Ney discounts from counts of counts"),
    Task("lstm_backward", "local", "f(cache, dout, dh_n, dc_n) -> (dx, dh0, dc0, dw_ih, "
         "dw_hh, db)", "minipar.check_lstm:reference_backward",
         "minipar.assignments.lstm_backward", "Task 3.1: backpropagation through time for "
         "one LSTM layer"),
    Task("buckets", "local", "f(params, bucket_bytes) -> list of lists of parameter indices",
         "minipar.parallel.sync:make_buckets", "minipar.assignments.buckets",
         "Task 6.1: gradient buckets, last parameter first"),
    Task("lpt", "local", "f(costs, p) -> list of p lists of task indices (or a Plan)",
         "minipar.parallel.schedule:lpt", "minipar.assignments.lpt",
         "Task 8.1: the longest-processing-time-first scheduler"),
]}


def _ranks(text: str) -> list[int]:
    try:
        ranks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--ranks {text!r}: give numbers separated by commas, e.g. 1,2,3,4") \
            from None
    if not ranks or min(ranks) < 1:
        raise UserError(f"--ranks {text!r}: every number of ranks must be at least 1")
    return ranks


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m minipar.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", nargs="?", choices=list(TASKS), metavar="TASK",
                    help="what to grade: " + ", ".join(TASKS))
    ap.add_argument("target", nargs="?", metavar="module:function",
                    help="your implementation (module on the path, or file.py:function); "
                         "default: minipar's own reference")
    ap.add_argument("--ranks", default="1,2,3,4",
                    help="numbers of ranks for collective tasks (default: 1,2,3,4)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds any one wait may take before it counts as a deadlock "
                         "(default: 10)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--list", action="store_true", help="list the tasks and exit")
    return ap


def list_tasks() -> str:
    lines = []
    for t in TASKS.values():
        lines += [f"{t.name:<15} {t.about}", f"{'':<15} signature: {t.signature}",
                  f"{'':<15} reference: {t.reference}   stub: {t.stub}"]
    return "\n".join(lines)


def grade(task: str, target: str, ranks=(1, 2, 3, 4), timeout: float = 10.0) -> Report:
    """Grade ``target`` ("module:function") on ``task``; returns the report."""
    t0 = time.perf_counter()
    report = Report(task, target)
    spec = TASKS[task]
    if spec.kind == "mpi":
        from minipar.check_collective import grade as grade_mpi
        from minipar.plugins import load_callable
        try:
            load_callable(target)  # a clear message now rather than one per rank
        except UserError as exc:
            report.add("loads", False, str(exc))
        else:
            grade_mpi(task, target, ranks, timeout, report)
    else:
        from minipar.check_local import grade as grade_local
        grade_local(task, target, timeout, report)
    report.seconds = time.perf_counter() - t0
    return report


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.list:
        print(list_tasks())
        return 0
    if not args.task:
        ap.print_usage(sys.stderr)
        print("minipar: error: give a TASK (--list shows them)", file=sys.stderr)
        return 2
    try:
        ranks = _ranks(args.ranks)
        if not args.timeout > 0:
            raise UserError(f"--timeout must be positive seconds, got {args.timeout}")
    except UserError as exc:
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2
    report = grade(args.task, args.target or TASKS[args.task].reference, ranks, args.timeout)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
