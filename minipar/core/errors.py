"""Errors a user can cause and fix. They are reported as one line, without a traceback.

Anything raised as a ``UserError`` (or subclass) means "your input is wrong", not "minipar is
broken": the command line prints ``minipar: error: <message>`` on stderr and exits with
status 2 on every rank. Any other exception is a bug or a fault and is reported with the
rank and place it came from.
"""

from __future__ import annotations

import os
import traceback


class UserError(Exception):
    """A mistake in flags, files or sizes; the message alone must tell the user what to fix."""


class DataError(UserError):
    """A corpus, dataset or vocabulary that cannot be used (the message names the file)."""


class ConfigError(UserError):
    """A bad option, option value or configuration file entry."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, corrupted or belongs to another run."""


class Divergence(UserError):
    """The loss, the gradients or the parameters stopped being finite numbers. Raised on every
    rank at the same step (the checks read allreduced flags), so it is agreed."""

    agreed = True


def where(exc: BaseException, skip=()) -> str:
    """``file.py:123 in function``: the innermost frame of the traceback whose file is not
    under one of the folders in ``skip`` (the caller's line); the innermost frame if all are."""
    tb = traceback.extract_tb(exc.__traceback__)
    prefixes = tuple(os.path.join(os.path.abspath(s), "") for s in skip)
    outside = [f for f in tb if not os.path.abspath(f.filename).startswith(prefixes)]
    frames = outside or tb
    if not frames:
        return "?"
    f = frames[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"
