"""Where runs go in MLflow, and the few helpers every writer shares."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..errors import ConfigError, UnreachableError, first_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# Makes the MLflow UI open the experiment on its training runs, not a GenAI overview.
_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use: the flag, else MLFLOW_TRACKING_URI, else ./mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking(uri: str, *, timeout: float = 20.0) -> None:
    """Raises UnreachableError unless the tracking store answers and accepts our credentials; quick, before training."""
    if uri.startswith(("http://", "https://")):
        if urlsplit(uri).password is not None:
            # A URI is printed, logged and exported; a password in it would be too.
            raise ConfigError(
                "put MLflow credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                "not in the tracking URI"
            )
        base = uri.rstrip("/")
        try:
            with urllib.request.urlopen(base + "/health", timeout=timeout) as response:
                if response.status != 200:
                    raise UnreachableError(f"MLflow tracking server {uri} answered {response.status}")
            # A server in basic-auth mode answers /health to anyone but the API only to known users.
            request = urllib.request.Request(
                base + "/api/2.0/mlflow/experiments/search?max_results=1", headers=_auth_header()
            )
            urllib.request.urlopen(request, timeout=timeout).close()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                given = (
                    "refused the credentials in"
                    if os.environ.get("MLFLOW_TRACKING_USERNAME")
                    else "needs credentials: set"
                )
                raise UnreachableError(
                    f"MLflow tracking server {uri} {given} MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                ) from None
            raise UnreachableError(f"MLflow tracking server {uri} answered {exc.code} ({exc.reason})") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnreachableError(f"cannot reach the MLflow tracking server at {uri} ({reason})") from None
        return
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UnreachableError(f"cannot write the MLflow store {uri}: {folder} is not a writable folder")
        if Path(uri.removeprefix("sqlite:///")).expanduser().exists():
            client(uri)  # an existing store that MLflow cannot open (corrupt, locked) fails here, before any change
        return
    scheme = urlsplit(uri).scheme.split("+")[0].lower() if "://" in uri else ""
    if scheme in _DATABASES:
        _check_database(uri, scheme, timeout=timeout)
    elif scheme not in ("", "file"):
        raise ConfigError(
            f"tracking URI {redact(uri)[:200]}: unknown kind {scheme[:40]!r}; use http(s)://HOST:PORT (an MLflow "
            "server), sqlite:///FILE, postgresql://, mysql://, mssql:// or a folder"
        )


# Database stores MLflow opens itself, and the Python driver each needs by default.
_DATABASES = {"postgresql": "psycopg2", "mysql": "pymysql", "mssql": "pyodbc"}
# The pip package of a driver module whose name differs.
_PIP = {"MySQLdb": "mysqlclient", "psycopg2": "psycopg2-binary"}


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


def _auth_header() -> dict[str, str]:
    """The HTTP basic-auth header MLflow's client sends from MLFLOW_TRACKING_USERNAME/PASSWORD, if they are set."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()}


def client(uri: str):
    """An MlflowClient on `uri` (imported lazily: MLflow takes a second to import)."""
    # A tracking server makes the client print a link for every run it ends; the summary gives the links that matter.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # A server that proxies artifacts to S3 offers presigned URLs for direct downloads (and large uploads); their host
    # (compose's minio:9000) is often unreachable from where the client runs. Artifacts go through the server unless
    # the user asks otherwise.
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false")
    from mlflow.tracking import MlflowClient

    lock = _creation_lock(Path(uri.removeprefix("sqlite:///")).expanduser()) if uri.startswith("sqlite:///") else None
    try:
        with lock or contextlib.nullcontext():
            return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - a store MLflow cannot open (locked, corrupt, newer schema): one line
        raise UnreachableError(f"cannot open the MLflow store {redact(uri)} ({first_line(exc)[:300]})") from None


@contextlib.contextmanager
def _creation_lock(path: Path):
    """A file lock around opening a SQLite store, which creates its tables when they are missing: two processes
    that create the same store at once would otherwise both try, and one fail ("table experiments already exists")."""
    if not path.parent.is_dir():
        yield  # check_tracking says why, in one line
        return
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
