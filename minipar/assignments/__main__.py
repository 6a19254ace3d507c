"""``python -m minipar.assignments list | copy DIR | release DIR``: show the tasks, copy the
stubs out, or write a student edition of minipar (the answers compiled, their sources out).

    python -m minipar.assignments list
    python -m minipar.assignments copy mywork        # refuses to overwrite a file there
    python -m minipar.assignments release student    # for instructors: docs/instructors.md
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from minipar.assignments import TASKS
from minipar.core.errors import UserError
from minipar.grading.release import release

HERE = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m minipar.assignments", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the tasks, their stubs and the command that grades each")
    cp = sub.add_parser("copy", help="copy the stubs into a directory to work on")
    cp.add_argument("dir", help="where to put them (created if missing)")
    rel = sub.add_parser("release", help="write a student edition of minipar: the modules "
                                         "that hold the answers compiled, their sources left out")
    rel.add_argument("dir", help="a new folder for the edition")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for num, (task, stub, fn) in TASKS.items():
            print(f"Task {num}  {stub:<18} python -m minipar.check {task} "
                  f"{stub[:-3]}:{fn}")
        return 0
    if args.command == "release":
        try:
            compiled = release(args.dir)
        except UserError as exc:
            print(f"minipar: error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote a student edition to {args.dir}: {len(compiled)} modules compiled "
              f"without their sources ({args.dir}/STUDENT_EDITION.md); students install it "
              f"with: pip install -e {args.dir}")
        return 0
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    clash = [stub for _, stub, _ in TASKS.values() if (out / stub).exists()]
    if clash:
        print(f"minipar: error: {out} already holds {', '.join(clash)}; not overwriting",
              file=sys.stderr)
        return 2
    for _, stub, _ in TASKS.values():
        shutil.copyfile(HERE / stub, out / stub)
    print(f"copied {len(TASKS)} stubs to {out}; grade one with, e.g.: cd {out} && "
          f"python -m minipar.check ring_allreduce ring_allreduce:allreduce")
    return 0


if __name__ == "__main__":
    sys.exit(main())
