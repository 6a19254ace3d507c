"""``python -m minipar``: the commands there are, one line each.

``python -m minipar NAME ARGS...`` runs ``python -m minipar.NAME ARGS...``, so a guess at
the spelling works too.
"""

from __future__ import annotations

import runpy
import sys

# (name, what it does); tests/test_layout.py checks that every command of minipar/ is here
COMMANDS = [
    ("train", "data-parallel training (LSTM LM, classifier, MLP, N-gram), every message shown"),
    ("ngram", "count N-gram models: fit, ppl, sample; Kneser-Ney, ARPA; parallel under mpiexec"),
    ("generate", "sample text from a trained run: generate RUN_DIR"),
    ("advise", "which parallel method to use, priced by the calibrated cost model"),
    ("schedule", "a static plan of tasks over ranks (LPT, list scheduling), and its chart"),
    ("pipeline", "pipeline-parallel training of the LSTM LM, one stage per rank"),
    ("grid", "independent training jobs spread over ranks by LPT"),
    ("check", "grade an assignment: check TASK module:function"),
    ("assignments", "the course assignments: list, copy, release"),
    ("bench", "the benchmarks behind docs/benchmarks.md: bench NAME"),
    ("clidoc", "docs/cli.md, made from the commands' own parsers"),
]


def usage(out) -> None:
    print("usage: python -m minipar.NAME [--help]     (mpiexec -n P python -m minipar.NAME: "
          "P ranks)\n", file=out)
    for name, what in COMMANDS:
        print(f"  {name:<12} {what}", file=out)
    print("\nStart with: mpiexec -n 4 python -m minipar.train   (tutorials/README.md walks "
          "through the rest)", file=out)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        usage(sys.stdout)
        return 0
    names = [name for name, _ in COMMANDS]
    if argv[0] not in names:
        print(f"minipar: error: unknown command {argv[0]!r}: choose from {', '.join(names)}",
              file=sys.stderr)
        return 2
    sys.argv = [f"python -m minipar.{argv[0]}", *argv[1:]]
    runpy.run_module(f"minipar.{argv[0]}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
