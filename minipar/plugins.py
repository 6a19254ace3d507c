"""Plug-in points: a student's own function in place of minipar's, named ``module:function``.

    load_callable("my_ring:allreduce")            # a module on sys.path (the current directory
    load_callable("work/my_ring.py:allreduce")    # counts) or a Python file
    get_scheduler("lpt")                          # minipar's policies by name ...
    get_scheduler("my_lpt:plan")                  # ... or yours: plan(costs, p) -> tasks per rank

The allreduce plug-in (``--allreduce module:function``) lives in
``minipar.parallel.collectives.get_allreduce``; ``python -m minipar.check`` grades either kind
of function before it is trusted with a training run.

A scheduler ``plan(costs, p)`` returns, for each of the p ranks, the list of task indices it
runs (a :class:`~minipar.parallel.schedule.Plan` is accepted too). Every rank calls it with
the same costs, so it must be a pure function of its arguments: no clock, no unseeded
randomness, no iteration over a set of objects.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from minipar.errors import ConfigError

__all__ = ["load_callable", "get_scheduler", "plan_tasks", "SCHEDULERS"]

SCHEDULERS = ("lpt", "block", "round_robin")


def _import_file(path: Path):
    name = f"_minipar_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_callable(spec: str, what: str = "function"):
    """The function named by ``"module:function"`` or ``"path/to/file.py:function"``.

    The current directory is searched first, so ``python -m minipar.check ... mine:fn`` finds
    ``./mine.py``. Raises :class:`ConfigError` with the reason when it cannot be loaded.
    """
    mod, sep, fn = str(spec).rpartition(":")
    if not sep or not mod or not fn:
        raise ConfigError(f"{what} {spec!r}: write it as module:function or file.py:function")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if mod.endswith(".py"):
            path = Path(mod)
            if not path.is_file():
                raise ConfigError(f"{what} {spec!r}: no file {mod}")
            module = _import_file(path.resolve())
        else:
            module = importlib.import_module(mod)
    except ConfigError:
        raise
    except Exception as exc:  # a student's syntax error is reported, not a crash
        raise ConfigError(f"{what} {spec!r}: importing {mod!r} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    func = getattr(module, fn, None)
    if not callable(func):
        raise ConfigError(f"{what} {spec!r}: {mod!r} has no function {fn!r}")
    return func


def plan_tasks(result, p: int, n: int) -> list[list[int]]:
    """A scheduler's answer as p lists of task indices; checks that every task appears once.

    ``result`` is a Plan or a sequence of p sequences of ints. Raises ValueError saying what
    is wrong (the grader shows the message to the student).
    """
    if hasattr(result, "actions") and hasattr(result, "tasks"):
        result = [result.tasks(r) for r in range(result.p)]
    try:
        lists = [[int(t) for t in ts] for ts in result]
    except (TypeError, ValueError):
        raise ValueError(f"expected a list of {p} lists of task indices, got "
                         f"{type(result).__name__}") from None
    if len(lists) != p:
        raise ValueError(f"expected one list per rank ({p}), got {len(lists)}")
    seen = sorted(t for ts in lists for t in ts)
    if seen != list(range(n)):
        missing = sorted(set(range(n)) - set(seen))
        extra = sorted({t for t in seen if not 0 <= t < n or seen.count(t) > 1})
        raise ValueError(f"every task 0..{n - 1} must appear exactly once"
                         + (f"; missing {missing[:5]}" if missing else "")
                         + (f"; repeated or unknown {extra[:5]}" if extra else ""))
    return lists


def get_scheduler(name: str):
    """``plan(costs, p) -> list of task lists``: one of :data:`SCHEDULERS` or module:function.

    Wrapped so the answer is checked (every task once, one list per rank) before use.
    """
    from minipar.parallel import schedule as S

    if name in SCHEDULERS:
        policy = name

        def builtin(costs, p):
            return S.make_plan(costs, p, policy)
        func = builtin
    else:
        func = load_callable(name, "scheduler")

    def checked(costs, p):
        try:
            return plan_tasks(func(list(costs), p), p, len(costs))
        except ValueError as exc:
            raise ConfigError(f"scheduler {name!r}: {exc}") from None
    return checked
