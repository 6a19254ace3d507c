"""Grade a student's implementation: ``python -m minipar.check TASK module:function``.

    python -m minipar.check ring_allreduce my_ring:allreduce             # under mpiexec, p=1..4
    python -m minipar.check tree_broadcast my_tree.py:broadcast --ranks 2,3,4,5
    python -m minipar.check lpt my_lpt:lpt --json                        # for an autograder
    python -m minipar.check --list                                       # the tasks
    python -m minipar.check ring_allreduce ring_allreduce:allreduce --submissions subs/

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
import os
import sys

from minipar.core.errors import UserError
from minipar.grading.classroom import default_jobs, grade_class, summary
from minipar.grading.exercises import EXERCISES, grade_exercise, list_exercises
from minipar.grading.mpi_worker import HIDDEN_VAR, hidden_cases


def _ranks(text: str) -> list[int]:
    try:
        ranks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--ranks {text!r}: give numbers separated by commas, e.g. 1,2,3,4") \
            from None
    if not ranks or min(ranks) < 1:
        raise UserError(f"--ranks {text!r}: every number of ranks must be at least 1")
    return ranks


def _hidden(path: str) -> None:
    """Check the instructor's case file, then hand it to the graders (MINIPAR_CHECK_CASES)."""
    os.environ[HIDDEN_VAR] = os.path.abspath(path)
    try:
        extra = hidden_cases()
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"--cases {path}: expected a JSON object like "
                        f'{{"lengths": [77], "seeds": [1]}} ({exc})') from None
    if min(extra["lengths"], default=0) < 0:
        raise UserError(f"--cases {path}: lengths must not be negative")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m minipar.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", nargs="?", choices=list(EXERCISES), metavar="TASK",
                    help="what to grade: " + ", ".join(EXERCISES))
    ap.add_argument("target", nargs="?", metavar="module:function",
                    help="your implementation (module on the path, or file.py:function); "
                         "default: minipar's own reference")
    ap.add_argument("--ranks", default="1,2,3,4",
                    help="numbers of ranks for collective tasks (default: 1,2,3,4)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds any one wait may take before it counts as a deadlock "
                         "(default: 10; a short case allows 2 s + 2e-5 s per element)")
    ap.add_argument("--cases", metavar="FILE",
                    help='instructors: more cases, hidden from students: a JSON file '
                         '{"lengths": [77, 4099], "seeds": [1, 2]} (collective tasks)')
    ap.add_argument("--submissions", metavar="DIR",
                    help="instructors: grade every folder in DIR (one submission each), "
                         "writing grade-TASK.json into each")
    ap.add_argument("--jobs", type=int,
                    help="with --submissions: how many to grade at once (default: "
                         "cores // max(ranks), at least 1)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--list", action="store_true", help="list the tasks and exit")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.list:
        print(list_exercises())
        return 0
    if not args.task:
        ap.print_usage(sys.stderr)
        print("minipar: error: give a TASK (--list shows them)", file=sys.stderr)
        return 2
    try:
        if args.cases:
            _hidden(args.cases)
        ranks = _ranks(args.ranks)
        if not args.timeout > 0:
            raise UserError(f"--timeout must be positive seconds, got {args.timeout}")
    except UserError as exc:
        print(f"minipar: error: {exc}", file=sys.stderr)
        return 2
    target = args.target or EXERCISES[args.task].reference
    if args.submissions:
        extra = ["--ranks", args.ranks, "--timeout", str(args.timeout)]
        extra += ["--cases", os.path.abspath(args.cases)] if args.cases else []
        jobs = args.jobs or default_jobs(ranks)
        wall = 60.0 + len(ranks) * (30.0 + 3 * args.timeout)
        try:
            results = grade_class(args.submissions, args.task, target, extra, jobs, wall)
        except UserError as exc:
            print(f"minipar: error: {exc}", file=sys.stderr)
            return 2
        print(summary(results), flush=True)
        return 0 if all(r is not None and r["ok"] for _, r, _ in results) else 1
    report = grade_exercise(args.task, target, ranks, args.timeout)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.format(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
