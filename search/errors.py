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


class EvaluationIncomplete(StacktuneError):
    """The evaluation ended with jobs missing: the comparison is published as incomplete and undecided, and the
    runs are left for `--resume` to finish."""

    exit_code = 5


class DiskUnusable(StacktuneError):
    """The disk under the output folder is full or read-only."""

    exit_code = 4


class SearchInterrupted(StacktuneError):
    """The search (or `stacktune train`) was stopped before it was done (Ctrl-C, SIGTERM, SIGHUP): `signal` is the
    signal's number when one stopped it, and the exit status is 128 plus it (130 without one)."""

    exit_code = 130

    def __init__(self, message: str = "", *, signal: int | None = None):
        super().__init__(message)
        self.signal = signal
        if signal is not None:
            self.exit_code = 128 + signal

    @classmethod
    def of(cls, signum: int) -> SearchInterrupted:
        """The error a stop signal raises, worded for the user: `terminated (SIGTERM)`, `hung up (SIGHUP)`."""
        import signal

        words = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}
        name = signal.Signals(signum).name
        return cls(f"{words.get(signum, 'stopped')} ({name})", signal=signum)


def disk_error(exc: BaseException | None) -> OSError | None:
    """The out-of-space (or read-only file system) error behind `exc`, if that is what stopped a command."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def interruption(exc: BaseException | None) -> BaseException | None:
    """The SearchInterrupted (or KeyboardInterrupt) behind `exc`, if a stop signal is what ended a command: a signal
    that lands inside a library call (an MLflow query, say) may come out wrapped in that library's own error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (SearchInterrupted, KeyboardInterrupt)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an error's text, or the exception's type name when it has none."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0].strip()
    return exc if isinstance(exc, str) else type(exc).__name__
