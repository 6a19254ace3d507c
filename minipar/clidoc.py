"""The command-line reference, docs/cli.md, made from the argument parsers themselves.

    python -m minipar.clidoc            # print the page
    python -m minipar.clidoc --write    # write docs/cli.md (tests/test_cli_docs.py checks it)

Every module of the package with a ``__main__`` guard is a command (``python -m
minipar.NAME``), and so are the benchmarks of ``python -m minipar.bench``. The parser of a
command is caught in the act: its ``main([])`` is called with ``ArgumentParser.parse_known_args``
replaced by a function that records the parser and stops, so nothing runs and no parser has
to be exported under a known name. Sub-commands (``ngram fit``...) are found in the parser.
Help is formatted 100 columns wide, whatever the terminal.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import os
import re
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from minipar.bench.__main__ import available, usage

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "cli.md"
WIDTH = "100"


class _Caught(SystemExit):
    """Raised from inside parse_known_args once the parser is recorded."""


def commands() -> list[str]:
    """Module names that are commands, in the order of the page."""
    found = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body):
            found.append(f"minipar.{name}")
    for pkg in sorted(HERE.glob("*/__main__.py")):
        found.append(f"minipar.{pkg.parent.name}")
    first = ["minipar.train", "minipar.ngram", "minipar.check", "minipar.assignments"]
    return [m for m in first if m in found] + [m for m in found if m not in first]


def catch_parser(module: str, argv: list[str]) -> argparse.ArgumentParser | None:
    """The parser ``module.main(argv)`` builds, without running the command."""
    seen = {}
    original = argparse.ArgumentParser.parse_known_args

    def grab(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Caught(0)

    argv0, sys.argv[0] = sys.argv[0], f"python -m {module}"  # prog of parsers that set none
    argparse.ArgumentParser.parse_known_args = grab
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            package = (HERE / module.split(".", 1)[1] / "__main__.py").exists()
            importlib.import_module(module + ".__main__" if package else module).main(list(argv))
    except _Caught:
        pass
    finally:
        argparse.ArgumentParser.parse_known_args = original
        sys.argv[0] = argv0
    return seen.get("parser")


def _help(parser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip() + "\n"
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _subparsers(parser):
    """(name, parser, its help line) of each sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def _about(parser, fallback: str = "") -> str:
    """The first sentence of the description (or ``fallback``), fit for a table cell."""
    text = (parser.description or fallback).strip().split("\n\n")[0]
    first = re.sub(r"\s+", " ", text).split(". ")[0].rstrip(".:")
    return first.replace("``", "`").replace("|", "\\|")


def sections() -> list[tuple[str, str, str]]:
    """(title, one line about it, help text) for every command and sub-command."""
    out = []
    for module in commands():
        if module == "minipar.bench":
            out.append(("python -m minipar.bench", "the benchmarks", usage() + "\n"))
            for name in available():
                parser = catch_parser(module, [name])
                if parser is None:
                    raise RuntimeError(f"minipar.bench {name}: no argparse parser found")
                out.append((f"python -m minipar.bench {name}", _about(parser), _help(parser)))
            continue
        parser = catch_parser(module, [])
        if parser is None:
            raise RuntimeError(f"{module}: main([]) builds no argparse parser; a command "
                               f"needs one (library code belongs in a package)")
        out.append((f"python -m {module}", _about(parser), _help(parser)))
        for sub, subparser, about in _subparsers(parser):
            out.append((f"python -m {module} {sub}", _about(subparser, about),
                        _help(subparser)))
    return out


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def render() -> str:
    secs = sections()
    lines = ["# Command-line reference", "",
             "Every command's `--help`, made from its argument parser by "
             "`python -m minipar.clidoc --write`.",
             "Do not edit this page by hand: `tests/test_cli_docs.py` fails when it differs "
             "from what the parsers say.", "",
             "| command | what it does |", "| --- | --- |"]
    lines += [f"| [`{t}`](#{_anchor(t)}) | {a} |" for t, a, _ in secs]
    for title, _, text in secs:
        lines += ["", f"## {title}", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.clidoc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(HERE.parent)}")
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 when {DOC.relative_to(HERE.parent)} differs from the parsers")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        same = DOC.exists() and DOC.read_text() == text
        print(f"{DOC.relative_to(HERE.parent)} " + ("matches the parsers" if same else
              "is out of date: run python -m minipar.clidoc --write"))
        return 0 if same else 1
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
