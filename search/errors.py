"""Errors that the CLI turns into one line and an exit status."""
from __future__ import annotations


class StacktuneError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(StacktuneError):
    """An invalid spec, config or dataset: nothing was started."""

    exit_code = 2


class UnreachableError(StacktuneError):
    """Ray or the MLflow tracking server cannot be reached."""

    exit_code = 3
