"""The house rules of minipar/, checked on the import graph (docs/architecture.md).

Every import of a minipar module counts, at the top of a file or inside a function, so an
import moved into a function cannot hide a circle.
"""

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "minipar"

# Bottom to top: a module may import from its own layer or the layers below, never above.
LAYERS = {"core": 0, "autograd": 1, "data": 1, "comm": 1, "planning": 1, "nn": 2,
          "models": 3, "training": 4, "keras": 5, "grading": 5, "assignments": 5,
          "bench": 5}
COMMAND_LAYER = 6
MPI_MODULE = "minipar.comm.world"  # the one module that imports mpi4py
MAX_LINES = 450
# Named for what they run or for the file a student edits, not library modules.
NOT_LIBRARY = ("minipar.bench.", "minipar.assignments.")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> list[str]:
    """Every module of the package that ``name`` imports (``from a import b`` names the
    module ``a.b`` when b is one)."""
    out = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join(here + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append(full if full in MODULES else base)
    found = []
    for target in out:
        while target and target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in MODULES and target not in ("minipar", name):
            found.append(target)
    return sorted(set(found))


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _is_command(name: str) -> bool:
    """A file at the top of minipar/ (not a package's ``__init__``)."""
    return name != "minipar" and MODULES[name].parent == PKG


def _layer(name: str) -> int:
    return COMMAND_LAYER if _is_command(name) else LAYERS[name.split(".")[1]]


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_planted_circle():
    planted = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert _cycles(planted) == [["a", "b", "c"]]


def test_every_package_has_a_layer():
    packages = {n.split(".")[1] for n in MODULES if n != "minipar" and not _is_command(n)}
    assert packages <= set(LAYERS), f"give these packages a layer: {packages - set(LAYERS)}"


def test_arrows_point_down():
    upward = [f"{a} -> {b}" for a, targets in GRAPH.items() if a != "minipar"
              for b in targets if _layer(b) > _layer(a)]
    assert upward == []


def test_library_module_names_are_unique():
    by_name = defaultdict(list)
    for name in MODULES:
        if _is_command(name) or name.startswith(NOT_LIBRARY) or name.count(".") < 2:
            continue
        leaf = name.rsplit(".", 1)[1]
        if leaf != "__main__":
            by_name[leaf].append(name)
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}


def test_top_level_files_are_commands():
    """A file at the top of minipar/ is a command (a parser and ``main``), and nothing in the
    library imports one."""
    not_commands = []
    for name, path in MODULES.items():
        if not _is_command(name):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if "main" not in defs or '__name__ == "__main__"' not in path.read_text():
            not_commands.append(name)
    assert not_commands == []
    imported = [f"{a} -> {b}" for a, targets in GRAPH.items() if not _is_command(a)
                and a != "minipar" for b in targets if _is_command(b)]
    assert imported == []


def test_only_one_module_imports_mpi4py():
    users = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "mpi4py" for n in names):
                users.append(name)
    assert sorted(set(users)) == [MPI_MODULE]


def test_library_files_fit_in_one_sitting():
    lines = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, path in MODULES.items()}
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}


def test_python_m_minipar_lists_every_command():
    """``python -m minipar`` names each command module and each package run with -m."""
    from minipar.__main__ import COMMANDS

    commands = {p.stem for p in PKG.glob("*.py") if not p.stem.startswith("__")}
    commands |= {p.parent.name for p in PKG.glob("*/__main__.py")}
    assert sorted(name for name, _ in COMMANDS) == sorted(commands)


def test_python_m_minipar_runs_a_named_command_and_refuses_others():
    import subprocess
    import sys

    from minipar.__main__ import COMMANDS

    def run(*args):
        return subprocess.run([sys.executable, "-m", "minipar", *args], capture_output=True,
                              text=True, timeout=60, cwd=PKG.parent)

    listing = run()
    assert listing.returncode == 0 and "  train " in listing.stdout
    typo = run("trian", "--steps", "3")
    assert typo.returncode == 2 and typo.stderr.splitlines() == [
        "minipar: error: unknown command 'trian': choose from "
        + ", ".join(name for name, _ in COMMANDS)]
    named = run("generate", "no-such-run")
    assert named.returncode == 2 and named.stderr.strip() == (
        "minipar: error: no-such-run: no such run directory")
