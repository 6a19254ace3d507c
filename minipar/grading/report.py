"""What the grader hands back: named checks, each passed or failed with a message, a score.

    report = Report("ring_allreduce", "my_ring:allreduce")
    report.add("3 ranks: sums", ok=False, message="n=5: rank 1 element 4 is 3, expected 6")
    print(report.format())          # one line per check, then the score
    json.dumps(report.to_json())    # the same, for a course's autograder

The score (the scheme is in the JSON too, ``"scheme"``):

    score = sum of the weights of the checks passed / sum of all weights

with a correctness gate: when any correctness check fails (the answer is wrong, or a case
did not finish), the other checks (the message pattern, identical bits) earn nothing, so a
wrong or deadlocking solution cannot collect points for its style. For the collective
exercises, per number of ranks: finishes 3, results 4 (correctness), identical 1,
messages 2; the local exercises' checks are all correctness, weight 1 each.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass, field

import minipar
from minipar.core.errors import where

PACKAGE = os.path.dirname(os.path.abspath(minipar.__file__))

__all__ = ["Check", "Report", "first_line", "student_where"]


@dataclass
class Check:
    name: str
    ok: bool
    message: str = ""
    weight: float = 1.0
    correctness: bool = True  # False: earns its weight only while every correctness check passes


@dataclass
class Report:
    task: str
    target: str
    checks: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, name: str, ok: bool, message: str = "", weight: float = 1.0,
            correctness: bool = True) -> Check:
        check = Check(name, bool(ok), message, weight, correctness)
        self.checks.append(check)
        return check

    def hint(self, text: str) -> None:
        if text not in self.hints:
            self.hints.append(text)

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def gate_open(self) -> bool:
        """Every correctness check passed (only then do the others earn their weight)."""
        return all(c.ok for c in self.checks if c.correctness)

    @property
    def score(self) -> float:
        total = sum(c.weight for c in self.checks)
        earned = sum(c.weight for c in self.checks
                     if c.ok and (c.correctness or self.gate_open))
        return earned / total if total else 0.0

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def format(self) -> str:
        lines = [f"minipar.check {self.task} {self.target}"]
        for c in self.checks:
            mark = "PASS" if c.ok else "FAIL"
            text = f"  {mark}  {c.name}"
            if c.message:
                body = c.message.replace("\n", "\n        ")
                text += f": {body}" if not c.ok else f" ({body})"
            lines.append(text)
        for h in self.hints:
            lines.append(f"  hint: {h}")
        gate = "" if self.gate_open or all(c.correctness for c in self.checks) else (
            "; a correctness check failed, so the other checks earn nothing")
        lines.append(f"score {100 * self.score:.0f}% ({self.passed}/{self.total} checks passed"
                     f"{gate}) in {self.seconds:.1f} s")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"task": self.task, "target": self.target, "score": round(self.score, 4),
                "passed": self.passed, "total": self.total, "ok": self.ok,
                "seconds": round(self.seconds, 3), "hints": list(self.hints),
                "scheme": "score = weights of the checks passed / all weights; when a "
                          "correctness check fails the others earn nothing",
                "gate_open": self.gate_open,
                "checks": [{"name": c.name, "ok": c.ok, "message": c.message,
                            "weight": c.weight, "correctness": c.correctness}
                           for c in self.checks]}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def student_where(exc: BaseException) -> str:
    """``file.py:12 in fn``: the innermost frame outside the minipar package and Python's own
    library (the student's line that made the failing call), else the innermost frame."""
    paths = sysconfig.get_paths()
    return where(exc, skip=(PACKAGE, paths["stdlib"], paths["purelib"]))
