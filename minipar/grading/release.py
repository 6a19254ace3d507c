"""A student edition of minipar: the graded references compiled, their sources left out.

    python -m minipar.assignments release DIR      (from a source checkout; DIR must be new)

Every exercise is graded against minipar's own implementation, which is also what the library
runs (the ring allreduce is the default for training). A student edition keeps the library
working and the answers out of sight: DIR gets the project (pyproject.toml, README.md,
minipar/, tutorials/, docs/), and each module that holds a reference (EXERCISES' references:
the collectives, the Kneser-Ney discounts, the gradient buckets, LPT, the LSTM backward and
the fused LSTM layer whose backward it runs) is
replaced by its compiled bytecode, ``name.pyc`` beside where ``name.py`` was. Python imports
such a file when no source is there, so ``pip install -e DIR`` gives students a minipar that
trains and grades as usual, without the source of the answers.

The bytecode is for the Python that made it (``python3 --version`` is written to
DIR/STUDENT_EDITION.md): release with the Python your students use. It keeps the honest
student honest; it does not stop a determined one (bytecode can be disassembled).
"""

from __future__ import annotations

import importlib
import py_compile
import shutil
import sys
from pathlib import Path

from minipar.core.errors import UserError
from minipar.grading.exercises import EXERCISES

PACKAGE = Path(importlib.import_module("minipar").__file__).resolve().parent
ROOT = PACKAGE.parent
COPIED = ("pyproject.toml", "README.md", "CHANGELOG.md", "minipar", "tutorials", "docs")


# Modules that hold an answer without being a grader's reference: the fused LSTM layer's
# hand-written backward is Task 3.1 done (the reference of Task 3.1 runs it).
ALSO_ANSWERS = ("minipar.nn.lstm_fused",)


def reference_modules() -> list[str]:
    """The modules that hold a graded reference or an answer (dotted names, sorted)."""
    return sorted({e.reference.partition(":")[0] for e in EXERCISES.values()}
                  | set(ALSO_ANSWERS))


def release(out) -> list[Path]:
    """Write the student edition into ``out`` (see the module docstring); returns the
    compiled files."""
    out = Path(out)
    if not (ROOT / "pyproject.toml").is_file():
        raise UserError(f"release needs minipar's source checkout; {ROOT} has no "
                        f"pyproject.toml (is minipar installed from a wheel?)")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty: give a new folder for the student edition")
    out.mkdir(parents=True, exist_ok=True)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=junk)
        elif src.is_file():
            shutil.copyfile(src, out / name)
    compiled = []
    for module in reference_modules():
        source = out.joinpath(*module.split(".")).with_suffix(".py")
        target = source.with_suffix(".pyc")
        py_compile.compile(str(source), cfile=str(target), dfile=str(source.resolve()),
                           doraise=True)
        source.unlink()
        compiled.append(target)
    version = ".".join(map(str, sys.version_info[:3]))
    (out / "STUDENT_EDITION.md").write_text(
        "# minipar, student edition\n\n"
        f"Made by `python -m minipar.assignments release` with Python {version}: install it "
        f"with that Python (`pip install -e .`). These modules are compiled, their sources "
        f"left out, because they hold the answers to the graded tasks:\n\n"
        + "".join(f"- `{m}`\n" for m in reference_modules()), encoding="utf-8")
    return compiled
