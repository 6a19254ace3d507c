"""The course stubs: each is where its docstring says, fails its grader with a message that
names the task, takes the same arguments as minipar's reference (which passes, see
test_check*.py), and can be copied out with ``python -m minipar.assignments copy``."""

import inspect
from pathlib import Path

import pytest

from minipar import check
from minipar.grading.exercises import EXERCISES, grade_exercise
from minipar.assignments import TASKS
from minipar.assignments.__main__ import main as assignments_main
from minipar.core.plugins import load_callable

HERE = Path(check.__file__).resolve().parent / "assignments"


@pytest.mark.parametrize("num", list(TASKS))
def test_stub_is_marked_and_documented(num):
    task, stub, fn = TASKS[num]
    text = (HERE / stub).read_text()
    assert f"# TODO: Task {num}" in text
    assert f"python -m minipar.check {task} {stub[:-3]}:{fn}" in text
    assert EXERCISES[task].stub == f"minipar.assignments.{stub[:-3]}"


@pytest.mark.parametrize("num", list(TASKS))
def test_stub_takes_the_reference_arguments(num):
    task, stub, fn = TASKS[num]
    mine = inspect.signature(load_callable(f"minipar.assignments.{stub[:-3]}:{fn}"))
    ref = inspect.signature(load_callable(EXERCISES[task].reference))
    want = [p for p in ref.parameters.values() if p.default is inspect.Parameter.empty]
    assert [p.name for p in mine.parameters.values()][:len(want)] == [p.name for p in want]


@pytest.mark.parametrize("num", [n for n, (t, _, _) in TASKS.items()
                                 if EXERCISES[t].kind == "local"])
def test_local_stub_fails_with_its_task_number(num):
    task, stub, fn = TASKS[num]
    report = grade_exercise(task, f"minipar.assignments.{stub[:-3]}:{fn}")
    assert report.passed == 0 and report.total >= 4
    first = report.checks[0].message
    assert "not implemented yet" in first and f"Task {num}" in first and stub in first
    assert all("not implemented yet" in c.message for c in report.checks)


@pytest.mark.mpi
@pytest.mark.parametrize("num", [n for n, (t, _, _) in TASKS.items()
                                 if EXERCISES[t].kind == "mpi"])
def test_collective_stub_fails_with_its_task_number(num):
    task, stub, fn = TASKS[num]
    report = grade_exercise(task, f"minipar.assignments.{stub[:-3]}:{fn}", ranks=[2])
    assert report.passed == 0 and report.total == 4
    assert f"not implemented yet (NotImplementedError: Task {num}" in report.checks[0].message


def test_copy_and_list(tmp_path, capsys):
    assert assignments_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"Task {n}" in out for n in TASKS)
    assert assignments_main(["copy", str(tmp_path / "work")]) == 0
    copied = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert copied == sorted(stub for _, stub, _ in TASKS.values())
    assert assignments_main(["copy", str(tmp_path / "work")]) == 2
    assert "not overwriting" in capsys.readouterr().err


def test_release_writes_a_student_edition_without_the_answers(tmp_path):
    import os
    import subprocess
    import sys

    from minipar.grading.release import reference_modules

    out = tmp_path / "student"
    assert assignments_main(["release", str(out)]) == 0
    for module in reference_modules():
        path = out.joinpath(*module.split("."))
        assert path.with_suffix(".pyc").is_file() and not path.with_suffix(".py").exists()
    assert (out / "pyproject.toml").is_file() and (out / "STUDENT_EDITION.md").is_file()
    env = dict(os.environ, PYTHONPATH=str(out))
    code = ("import inspect, minipar.comm.collectives as c; print(c.__file__)\n"
            "try:\n    inspect.getsource(c.allreduce_ring)\nexcept OSError:\n    print('hidden')")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.stdout.split() == [str(out / "minipar" / "comm" / "collectives.pyc"), "hidden"]
    graded = subprocess.run([sys.executable, "-m", "minipar.check", "lpt"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert graded.returncode == 0, graded.stdout + graded.stderr  # the hidden reference runs
    assert assignments_main(["release", str(out)]) == 2  # never over an existing edition
