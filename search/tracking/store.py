"""Where runs go in MLflow, and the few helpers every writer shares."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from stacktune.datasets.errors import shown

from ..errors import ConfigError, UnreachableError, first_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# Makes the MLflow UI open the experiment on its training runs, not a GenAI overview.
_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use: the flag, else MLFLOW_TRACKING_URI, else ./mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking(uri: str, *, timeout: float | None = None) -> None:
    """Raises UnreachableError unless the tracking store answers and accepts our credentials; quick, before training.
    `timeout`: seconds to wait for an answer (by default 5 for a tracking server, 20 for a database)."""
    check_uri_text(uri, "tracking URI")
    if uri.startswith(("http://", "https://")):
        if urlsplit(uri).password is not None:
            # A URI is printed, logged and exported; a password in it would be too.
            raise ConfigError(
                "put MLflow credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                "not in the tracking URI"
            )
        _check_server(uri, timeout=5.0 if timeout is None else timeout)
        return
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).expanduser()
        folder = path.resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UnreachableError(f"cannot write the MLflow store {uri}: {folder} is not a writable folder")
        if path.is_dir():  # SQLite would retry opening it for a minute
            raise ConfigError(f"tracking URI {uri}: {path} is a folder, not a SQLite database file")
        if path.exists() and not path.is_file():
            raise ConfigError(f"tracking URI {uri}: {path} is not a regular file (a SQLite database file)")
        if path.exists():
            client(uri)  # an existing store that MLflow cannot open (corrupt, locked) fails here, before any change
        return
    if "://" not in uri and ":" in uri.split("/", 1)[0] and not uri.startswith("file:"):
        # Not a URI MLflow can read, nor a folder path: MLflow would fail on it only once the search had started.
        raise ConfigError(
            f"tracking URI {shown(redact(uri))}: not a URI; use http(s)://HOST:PORT (an MLflow server), "
            "sqlite:///FILE, postgresql://, mysql://, mssql:// or a folder"
        )
    scheme = urlsplit(uri).scheme.split("+")[0].lower() if "://" in uri else ""
    if scheme in _DATABASES:
        _check_database(uri, scheme, timeout=20.0 if timeout is None else timeout)
    elif scheme not in ("", "file"):
        raise ConfigError(
            f"tracking URI {redact(uri)[:200]}: unknown kind {scheme[:40]!r}; use http(s)://HOST:PORT (an MLflow "
            "server), sqlite:///FILE, postgresql://, mysql://, mssql:// or a folder"
        )


# Database stores MLflow opens itself, and the Python driver each needs by default.
_DATABASES = {"postgresql": "psycopg2", "mysql": "pymysql", "mssql": "pyodbc"}
# The pip package of a driver module whose name differs.
_PIP = {"MySQLdb": "mysqlclient", "psycopg2": "psycopg2-binary"}


def check_uri_text(value: str, what: str) -> None:
    """Raises ConfigError when `value` is empty or holds a line break or another control character (a value pasted
    with its newline): it would name another store or folder than the one meant."""
    if not value.strip():
        raise ConfigError(f"{what}: empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{what} {shown(redact(value))}: holds a line break or another control character; remove it")


def redact(uri: str) -> str:
    """`uri` with any password in it replaced by ***: what messages and logs may show."""
    try:
        password = urlsplit(uri).password
    except ValueError:
        return uri
    return uri.replace(f":{password}@", ":***@") if password else uri


def reason_without_password(exc: BaseException, url: str, limit: int = 300) -> str:
    """The first line of `exc`, at most `limit` characters, with the password of `url` (which a driver's
    message may quote) replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    reason = first_line(exc)
    return (reason.replace(password, "***") if password else reason)[:limit]


def _check_database(uri: str, scheme: str, *, timeout: float) -> None:
    """Raises a one-line error unless the database store answers: a missing driver (2) or no answer (3)."""
    import sqlalchemy

    engine = None
    args = {"connect_timeout": int(timeout)} if scheme in ("postgresql", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=args)
        with engine.connect():
            pass
    except ModuleNotFoundError as exc:
        hint = " (or write postgresql+psycopg:// to use psycopg 3)" if scheme == "postgresql" else ""
        package = _PIP.get(exc.name, exc.name or _DATABASES[scheme])
        raise ConfigError(
            f"the MLflow store {redact(uri)} needs the Python package {package}: pip install it{hint}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the store did not answer
        reason = reason_without_password(exc, uri)
        raise UnreachableError(f"cannot reach the MLflow store {redact(uri)} ({reason})") from None
    finally:
        if engine is not None:
            engine.dispose()


def _check_server(uri: str, *, timeout: float) -> None:
    """Raises UnreachableError unless the tracking server at `uri` answers MLflow's own client, which takes its
    credentials (MLFLOW_TRACKING_USERNAME/PASSWORD, MLFLOW_TRACKING_TOKEN), TLS settings (MLFLOW_TRACKING_INSECURE_TLS,
    MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_CLIENT_CERT_PATH) and proxy from the environment."""
    mlflow_client = client(uri)
    try:
        with asking_once(timeout):
            # A basic-auth server answers /health to anyone, but the API only to known users.
            mlflow_client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the server did not answer as it should
        raise UnreachableError(_server_failure(uri, exc)) from None


# MLflow's client retries a request with backoff for minutes by default; the check asks once.
_ASK_ONCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}


@contextlib.contextmanager
def asking_once(timeout: float):
    """While it lasts, MLflow's client sends a request once and waits `timeout` seconds (at least 1) for each
    connection and answer; the user's own settings of these variables come back afterwards. MLflow reads them on
    every request: callers ask from one thread."""
    bounds = {**_ASK_ONCE, "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout)))}
    saved = {name: os.environ.get(name) for name in bounds}
    os.environ.update(bounds)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _server_failure(uri: str, exc: BaseException) -> str:
    """The one line that says why the tracking server at `uri` failed the check with `exc`."""
    reason = _network_reason(exc)
    if reason is not None:
        return f"cannot reach the MLflow tracking server at {uri} ({reason})"
    status = exc.get_http_status_code() if hasattr(exc, "get_http_status_code") else None
    text = getattr(exc, "message", None) or str(exc)
    if status == 403 and "Invalid Host header" in text:
        # MLflow 3.5+ answers only the Host names it was told, against DNS rebinding.
        return (
            f"MLflow tracking server {uri} refused the Host header {urlsplit(uri).netloc} (403 Invalid Host header): "
            f"start it with {urlsplit(uri).hostname} in --allowed-hosts or MLFLOW_SERVER_ALLOWED_HOSTS "
            "(MLFLOW_ALLOWED_HOSTS in the compose stack's .env)"
        )
    if status in (401, 403):
        return f"MLflow tracking server {uri} {_credentials_hint()}"
    return f"MLflow tracking server {uri} answered {status or 'wrongly'} ({first_line(text)[:300]})"


def _credentials_hint() -> str:
    """What the client sent to a server that refused it, as MLflow's client chooses: basic auth, else a token."""
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()  # the environment, else ~/.mlflow/credentials
    if os.environ.get("MLFLOW_TRACKING_TOKEN") and not (creds.username and creds.password):
        return "refused the token in MLFLOW_TRACKING_TOKEN"
    if creds.username:
        return "refused the credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    return "needs credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


def _network_reason(exc: BaseException) -> str | None:
    """Why no HTTP answer came (refused, timed out, a certificate), from the requests error that MLflow's client
    wraps; None when the server answered."""
    import requests

    cause: BaseException | None = exc
    for _ in range(10):  # a chain of causes is short; a cycle must not hang the check
        if cause is None or isinstance(cause, requests.RequestException):
            break
        cause = cause.__cause__ or cause.__context__
    if not isinstance(cause, requests.RequestException):
        return None
    inner = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else cause
    reason = first_line(getattr(inner, "reason", None) or inner)[:300]  # urllib3 gives its last attempt's error
    if isinstance(cause, requests.exceptions.SSLError):
        reason += (
            "; a server with a self-signed certificate needs MLFLOW_TRACKING_SERVER_CERT_PATH (its CA bundle) "
            "or MLFLOW_TRACKING_INSECURE_TLS=true"
        )
    return reason


def client(uri: str):
    """An MlflowClient on `uri` (imported lazily: MLflow takes a second to import)."""
    # A tracking server makes the client print a link for every run it ends; the summary gives the links that matter.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # A server that proxies artifacts to S3 offers presigned URLs for direct downloads (and large uploads); their host
    # (compose's minio:9000) is often unreachable from where the client runs. Artifacts go through the server unless
    # the user asks otherwise.
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")
    # Artifact transfers draw progress bars on stderr, between the search's own lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    path = Path(uri.removeprefix("sqlite:///")).expanduser() if uri.startswith("sqlite:///") else None
    try:
        with _creation_lock(path) if path else contextlib.nullcontext(), _store_creation_quiet():
            if path and path.parent.is_dir() and not path.exists():
                _create_sqlite_store(path)
            return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - a store MLflow cannot open (locked, corrupt, newer schema): one line
        raise UnreachableError(f"cannot open the MLflow store {redact(uri)} ({first_line(exc)[:300]})") from None


def _create_sqlite_store(path: Path) -> None:
    """Makes a new SQLite store under a temporary name beside `path` and puts it in place whole: MLflow creates its
    tables in dozens of migrations, and one cut short (Ctrl-C, a kill, a full disk) would leave a store that MLflow
    then refuses to open ("out-of-date database schema"). The caller holds the creation lock."""
    from mlflow.tracking import MlflowClient

    new = path.with_name(f".{path.name}.new-{os.getpid()}")
    new.unlink(missing_ok=True)  # a leftover of a killed process that had this pid
    try:
        MlflowClient(tracking_uri=f"sqlite:///{new}").search_experiments(max_results=1)
        os.link(new, path)  # in one step, and never over a store that is already there
    except FileExistsError:
        pass
    finally:
        new.unlink(missing_ok=True)


# What logs while MLflow opens a database store: its own "Creating initial MLflow database tables" and "Updating
# database tables" lines, and Alembic's migrations.
_STORE_CREATION_LOGGERS = ("mlflow.store.db.utils", "alembic")


@contextlib.contextmanager
def _store_creation_quiet():
    """While it lasts, opening (and creating) a database store logs only warnings, unless the user set MLflow's log
    level (MLFLOW_LOGGING_LEVEL; `stacktune -v` sets DEBUG): the Python API promises to print nothing."""
    if os.environ.get("MLFLOW_LOGGING_LEVEL"):
        yield
        return
    loggers = [logging.getLogger(name) for name in _STORE_CREATION_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _creation_lock(path: Path):
    """A file lock around opening a SQLite store, which creates its tables when they are missing: two processes
    that create the same store at once would otherwise both try, and one fail ("table experiments already exists")."""
    if not path.parent.is_dir():
        yield  # check_tracking says why, in one line
        return
    from filelock import FileLock

    # The operating system's lock, which ends with its process: never filelock's soft fallback, a marker file that a
    # killed process would leave behind; the file stays on release, so a waiting process never locks an orphan.
    with FileLock(
        path.parent / f".{path.name}.lock", thread_local=False, fallback_to_soft=False, preserve_lock_file=True
    ):
        yield


def ensure_experiment(mlflow_client, name: str) -> str:
    """The id of experiment `name`, created (or restored) and tagged as a training experiment."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow_client.create_experiment(name, tags=dict([_KIND_TAG]))
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(experiment_id)
        if experiment.tags.get(_KIND_TAG[0]) != _KIND_TAG[1]:
            mlflow_client.set_experiment_tag(experiment_id, *_KIND_TAG)
    return experiment_id


def as_params(values: dict[str, Any]) -> list:
    """MLflow Param objects for a flat dict (None values are left out)."""
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in values.items() if value is not None]


def as_tags(values: dict[str, Any]) -> list:
    """MLflow RunTag objects for a flat dict."""
    from mlflow.entities import RunTag

    return [RunTag(key, str(value)) for key, value in values.items()]


def epoch_metrics(epoch: int, values: dict[str, float], *, timestamp_ms: int | None = None) -> list:
    """MLflow Metric objects for one epoch (step = epoch); non-finite values are skipped."""
    from mlflow.entities import Metric

    stamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    return [
        Metric(key, float(value), stamp, epoch)
        for key, value in values.items()
        if value is not None and value == value and abs(value) != float("inf")
    ]


def log_batch(
    mlflow_client, run_id: str, *, metrics: Iterable = (), params: Iterable = (), tags: Iterable = ()
) -> None:
    """One round trip for many values; MLflow caps a batch at 1000 metrics, so split."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    mlflow_client.log_batch(run_id, metrics=metrics[:1000], params=params, tags=tags)
    for start in range(1000, len(metrics), 1000):
        mlflow_client.log_batch(run_id, metrics=metrics[start : start + 1000])
