"""Whether a failed MLflow call means the store did not answer (worth trying again later) or refused the write, and
the shortest true reason to print for it."""

from __future__ import annotations

from ..errors import first_line


def is_transient(exc: BaseException) -> bool:
    """True when `exc` says the store did not answer (worth retrying), False when it refused the write."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        # The REST client raises INTERNAL_ERROR (500) when no answer came at all: refused
        # connection, timeout, retries exhausted. A server's own 4xx answer is a refusal.
        status = exc.get_http_status_code()
        return status >= 500 or status in (408, 429)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    try:
        import requests

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            status = exc.response.status_code  # an artifact upload's answer
            return status >= 500 or status in (408, 429)
        if isinstance(exc, requests.RequestException):
            return True
    except ImportError:  # pragma: no cover - MLflow depends on requests
        pass
    try:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):  # a locked or unreachable database
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


def short_reason(exc: BaseException) -> str:
    """The error's first line, at most 200 characters."""
    return first_line(exc)[:200]


def root_reason(exc: BaseException) -> str:
    """Why no answer came, from the innermost error behind `exc` ("[Errno 111] Connection refused", "timed out"),
    not the client's retry report around it."""
    inner, seen = exc, {id(exc)}
    while True:
        held = [a for a in inner.args if isinstance(a, BaseException)]  # urllib3 wraps the socket's error in args
        cause = inner.__cause__ or inner.__context__ or (held[-1] if held else None)
        if cause is None or id(cause) in seen:
            break
        seen.add(id(cause))
        inner = cause
    return short_reason(inner if str(inner).strip() else exc)
