"""Checks on input files shared by every reader (corpus.py, fast_text.py, the N-gram CLI)."""

from __future__ import annotations

import os

from minipar.core.errors import DataError

__all__ = ["check_file"]


def check_file(path: str, what: str = "data") -> None:
    """A DataError unless ``path`` names a file."""
    if not os.path.exists(path):
        raise DataError(f"{path}: {what} file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a {what} file")
