"""What the grader hands back: named checks, each passed or failed with a message, a score.

    report = Report("ring_allreduce", "my_ring:allreduce")
    report.add("3 ranks: sums", ok=False, message="n=5: rank 1 element 4 is 3, expected 6")
    print(report.format())          # one line per check, then the score
    json.dumps(report.to_json())    # the same, for a course's autograder

The score is the fraction of checks passed; every check weighs the same.
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


@dataclass
class Report:
    task: str
    target: str
    checks: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, name: str, ok: bool, message: str = "") -> Check:
        check = Check(name, bool(ok), message)
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
    def score(self) -> float:
        return self.passed / self.total if self.total else 0.0

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
        lines.append(f"score {self.passed}/{self.total} ({100 * self.score:.0f}%) in "
                     f"{self.seconds:.1f} s")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"task": self.task, "target": self.target, "score": round(self.score, 4),
                "passed": self.passed, "total": self.total, "ok": self.ok,
                "seconds": round(self.seconds, 3), "hints": list(self.hints),
                "checks": [{"name": c.name, "ok": c.ok, "message": c.message}
                           for c in self.checks]}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def student_where(exc: BaseException) -> str:
    """``file.py:12 in fn``: the innermost frame outside the minipar package and Python's own
    library (the student's line that made the failing call), else the innermost frame."""
    paths = sysconfig.get_paths()
    return where(exc, skip=(PACKAGE, paths["stdlib"], paths["purelib"]))
