"""The graded exercises: what each asks for, minipar's reference, the stub, and grading one.

An exercise is either graded under ``mpiexec`` (``kind="mpi"``: collectives, see
:mod:`minipar.grading.collective_checks`) or in this process (``kind="local"``, see
:mod:`minipar.grading.local_checks`). ``python -m minipar.check`` is the command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from minipar.assignments import buckets as buckets_stub
from minipar.assignments import kneser_ney as kneser_ney_stub
from minipar.assignments import lpt as lpt_stub
from minipar.assignments import lstm_backward as lstm_backward_stub
from minipar.assignments import ring_allreduce as ring_stub
from minipar.assignments import tree_broadcast as tree_stub
from minipar.comm import collectives
from minipar.core.errors import UserError
from minipar.core.plugins import load_callable
from minipar.grading import bptt_checks
from minipar.grading.collective_checks import grade_collective
from minipar.grading.local_checks import grade_local
from minipar.grading.report import Report
from minipar.models import kneser_ney
from minipar.planning import policies
from minipar.training import sync


@dataclass(frozen=True)
class Exercise:
    name: str
    kind: str          # "mpi": graded under mpiexec; "local": in this process
    signature: str
    reference: str     # minipar's own implementation, which passes ("module:function")
    stub: str          # the assignment to fill in (a module)
    about: str


EXERCISES = {t.name: t for t in [
    Exercise("allreduce", "mpi", "f(comm, buf) -> sums buf over the ranks, in place",
         f"{collectives.__name__}:allreduce_ring", ring_stub.__name__,
         "any allreduce written with point-to-point messages (what --allreduce accepts)"),
    Exercise("ring_allreduce", "mpi", "f(comm, buf) -> sums buf over the ranks, in place",
         f"{collectives.__name__}:allreduce_ring", ring_stub.__name__,
         "Task 5.1: the ring allreduce (reduce-scatter, then allgather around the ring)"),
    Exercise("broadcast", "mpi", "f(comm, buf, root) -> root's buf everywhere, in place",
         f"{collectives.__name__}:broadcast_tree", tree_stub.__name__,
         "any broadcast written with point-to-point messages"),
    Exercise("tree_broadcast", "mpi", "f(comm, buf, root) -> root's buf everywhere, in place",
         f"{collectives.__name__}:broadcast_tree", tree_stub.__name__,
         "Task 5.2: the binomial-tree broadcast (ceil(log2 p) rounds)"),
    Exercise("kneser_ney", "local", "f(a, order) -> ((D1, D2, D3), warning or None)",
         f"{kneser_ney.__name__}:estimate_discounts", kneser_ney_stub.__name__,
         "Task 2.1: the modified Kneser-Ney discounts from counts of counts"),
    Exercise("lstm_backward", "local", "f(cache, dout, dh_n, dc_n) -> (dx, dh0, dc0, dw_ih, "
         "dw_hh, db)", f"{bptt_checks.__name__}:reference_backward",
         lstm_backward_stub.__name__, "Task 3.1: backpropagation through time for "
         "one LSTM layer"),
    Exercise("buckets", "local", "f(params, bucket_bytes) -> list of lists of parameter indices",
         f"{sync.__name__}:make_buckets", buckets_stub.__name__,
         "Task 6.1: gradient buckets, last parameter first"),
    Exercise("lpt", "local", "f(costs, p) -> list of p lists of task indices (or a Plan)",
         f"{policies.__name__}:lpt", lpt_stub.__name__,
         "Task 8.1: the longest-processing-time-first scheduler"),
]}


def list_exercises() -> str:
    lines = []
    for t in EXERCISES.values():
        lines += [f"{t.name:<15} {t.about}", f"{'':<15} signature: {t.signature}",
                  f"{'':<15} stub: {t.stub} (minipar's own is graded when no "
                  f"module:function is given)"]
    return "\n".join(lines)


def grade_exercise(task: str, target: str, ranks=(1, 2, 3, 4), timeout: float = 10.0) -> Report:
    """Grade ``target`` ("module:function") on ``task``; returns the report."""
    t0 = time.perf_counter()
    report = Report(task, target)
    spec = EXERCISES[task]
    if spec.kind == "mpi":
        try:
            load_callable(target)  # a clear message now rather than one per rank
        except UserError as exc:
            report.add("loads", False, str(exc))
        else:
            grade_collective(task, target, ranks, timeout, report)
    else:
        grade_local(task, target, timeout, report)
    report.seconds = time.perf_counter() - t0
    return report
