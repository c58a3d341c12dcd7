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


class ResultsNotPublished(UnreachableError):
    """The MLflow tracking server did not answer while a finished search's results were attached to it: they are
    kept in the output folder, and the message says how to publish them."""


class SearchInterrupted(StacktuneError):
    """The search stopped before every depth had its trials (Ctrl-C, SIGTERM)."""

    exit_code = 130


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an error's text, or the exception's type name when it has none."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0].strip()
    return exc if isinstance(exc, str) else type(exc).__name__
