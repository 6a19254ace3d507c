"""``python -m minipar.bench NAME [options]``: run the benchmark in ``minipar/bench/NAME.py``.

Any module in this package with a ``main(argv)`` is a benchmark; nothing here needs to change
when one is added. ``--help`` lists them with the first line of each one's docstring, read
from the source so that listing imports nothing (no MPI, no torch).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, str]:
    """Benchmark name -> first line of its docstring."""
    out = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name.startswith("_") or info.ispkg:
            continue
        try:
            doc = ast.get_docstring(ast.parse((HERE / f"{info.name}.py").read_text())) or ""
        except (OSError, SyntaxError):
            doc = ""
        out[info.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(out.items()))


def usage() -> str:
    lines = ["usage: [mpiexec -n P] python -m minipar.bench NAME [options]", "",
             "benchmarks (NAME --help for each one's options):"]
    for name, doc in available().items():
        lines.append(f"  {name:<14} {doc}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    names = available()
    if name not in names:
        print(f"minipar: error: unknown benchmark {name!r}: choose from {', '.join(names)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__package__}.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
