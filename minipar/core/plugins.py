"""Plug-in points: a student's own function in place of minipar's, named ``module:function``.

    load_callable("my_ring:allreduce")            # a module on sys.path (the current directory
    load_callable("work/my_ring.py:allreduce")    # counts) or a Python file

The allreduce plug-in (``--allreduce module:function``) is resolved in
``minipar.comm.collectives.get_allreduce``, the scheduler plug-in (``--scheduler``) in
``minipar.planning.policies.get_scheduler``; ``python -m minipar.check`` grades either kind
of function before it is trusted with a training run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from minipar.core.errors import ConfigError

__all__ = ["load_callable"]


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
    except ModuleNotFoundError as exc:
        if exc.name != mod.split(".")[0]:
            raise ConfigError(f"{what} {spec!r}: importing {mod!r} failed: "
                              f"{type(exc).__name__}: {exc}") from None
        raise ConfigError(f"{what} {spec!r}: there is no {mod.split('.')[0]}.py in this folder "
                          f"({os.getcwd()}) nor a module {mod!r} on Python's path; run it "
                          f"where the file is, or give the file's path: "
                          f"path/to/{mod.split('.')[0]}.py:{fn}") from None
    except Exception as exc:  # a student's syntax error is reported, not a crash
        raise ConfigError(f"{what} {spec!r}: importing {mod!r} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    func = getattr(module, fn, None)
    if not callable(func):
        raise ConfigError(f"{what} {spec!r}: {mod!r} has no function {fn!r}")
    return func


