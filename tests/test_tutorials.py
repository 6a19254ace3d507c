"""Every tutorial runs: its code blocks are extracted and executed, in order, in a fresh
directory, so a tutorial cannot rot.

Conventions (tutorials/README.md says the same to readers):

    ```bash      commands: run as one bash script (set -e), under mpiexec where written
    ```python    a snippet: run with this Python in a subprocess
    ```python    whose first line is ``# file: tutorials/NAME.py``: a companion script shown
                 verbatim: checked to be the file's exact text (a bash block runs it)
    ```console   output the reader will see (from a real run): shown, not run; after the
                 line ``<!-- exact -->`` it must equal what the block before it prints now
    ```text      anything else shown and not run (e.g. commands for several hosts)

Blocks of one tutorial share a working directory (files made by one are there for the next)
that holds a link ``tutorials`` to the real folder. Run as a script to print each block's
output:  python tests/test_tutorials.py tutorials/04-first-parallel-program.md
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]-*.md"))
FENCE = re.compile(r"^```(\w+)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
BLOCK_TIMEOUT = 120


def blocks(path: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order; a console block marked exact has
    the language ``exact``."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        lang = m.group(1)
        if lang == "console" and text[:m.start()].rstrip().endswith("<!-- exact -->"):
            lang = "exact"
        out.append((lang, m.group(2)))
    return out


def environment(work: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env["MINIPAR_CALIBRATION"] = str(work / "calibration.json")  # not the user's own
    env.setdefault("PYTHONUNBUFFERED", "1")
    # One BLAS thread per process: on a shared machine OpenBLAS's spinning threads made a
    # one-second training run take twenty (the printed losses were the same with one and two).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def run_block(lang: str, code: str, work: Path, env: dict) -> subprocess.CompletedProcess:
    if lang == "bash":
        cmd = ["bash", "-c", "set -euo pipefail\n" + code]
    else:
        script = work / "_block.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)


def companion(code: str) -> Path | None:
    first = code.splitlines()[0] if code.strip() else ""
    m = re.match(r"#\s*file:\s*(\S+)", first)
    return ROOT / m.group(1) if m else None


def run_tutorial(path: Path, work: Path, show: bool = False) -> None:
    (work / "tutorials").symlink_to(ROOT / "tutorials")
    env = environment(work)
    printed = None
    for k, (lang, code) in enumerate(blocks(path)):
        if lang == "exact":
            assert printed is not None, f"{path.name} block {k}: nothing ran before it"
            assert code.strip() == printed.strip(), (
                f"{path.name} block {k}: the output changed; now it is\n{printed}")
            continue
        if lang == "python" and companion(code):
            shown = companion(code)
            assert shown.exists(), f"{path.name} block {k}: {shown} does not exist"
            assert code == shown.read_text(), \
                f"{path.name} block {k}: not the exact text of {shown.relative_to(ROOT)}"
            continue
        if lang not in ("bash", "python"):
            continue
        proc = run_block(lang, code, work, env)
        if show:
            print(f"----- block {k} ({lang}) exit {proc.returncode}\n{code}-----")
            print(proc.stdout + proc.stderr)
        assert proc.returncode == 0, (f"{path.name} block {k} ({lang}) exited "
                                      f"{proc.returncode}:\n{code}\n--- stdout\n{proc.stdout}"
                                      f"\n--- stderr\n{proc.stderr}")
        printed = proc.stdout + proc.stderr


def test_there_are_twelve_tutorials_each_with_an_exercise():
    assert [p.name[:2] for p in TUTORIALS] == [f"{i:02d}" for i in range(1, 13)]
    for p in TUTORIALS:
        text = p.read_text()
        assert re.search(r"^## Exercise", text, re.M), f"{p.name}: no '## Exercise' section"
        assert any(lang in ("bash", "python") for lang, _ in blocks(p)), p.name
        assert "```console" in text, f"{p.name}: shows no output"


@pytest.mark.mpi
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    run_tutorial(path, tmp_path)


if __name__ == "__main__":
    import tempfile
    for name in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as d:
            run_tutorial(Path(name).resolve(), Path(d), show=True)
