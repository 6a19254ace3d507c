"""Errors a user can cause and fix. They are reported as one line, without a traceback.

Anything raised as a ``UserError`` (or subclass) means "your input is wrong", not "minipar is
broken": the command line prints ``minipar: error: <message>`` on stderr and exits with
status 2 on every rank. Any other exception is a bug or a fault and is reported with the
rank and place it came from.
"""


class UserError(Exception):
    """A mistake in flags, files or sizes; the message alone must tell the user what to fix."""


class DataError(UserError):
    """A corpus, dataset or vocabulary that cannot be used (the message names the file)."""


class ConfigError(UserError):
    """A bad option, option value or configuration file entry."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, corrupted or belongs to another run."""
