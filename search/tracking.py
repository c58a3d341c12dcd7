"""Where runs go in MLflow, and the few helpers every writer shares."""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from .errors import UnreachableError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ROLE = "stacktune.role"
DEPTH = "stacktune.depth"
STATE = "stacktune.state"
SEARCH = "stacktune.search"
# Makes the MLflow UI open the experiment on its training runs, not a GenAI overview.
_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use: the flag, else MLFLOW_TRACKING_URI, else ./mlflow.db."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking(uri: str, *, timeout: float = 5.0) -> None:
    """Raises UnreachableError unless the tracking store answers; quick, before any training."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status != 200:
                    raise UnreachableError(f"MLflow tracking server {uri} answered {response.status}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnreachableError(f"cannot reach the MLflow tracking server at {uri} ({reason})") from None
        return
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UnreachableError(f"cannot write the MLflow store {uri}: {folder} is not a writable folder")


def client(uri: str):
    """An MlflowClient on `uri` (imported lazily: MLflow takes a second to import)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


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


def log_batch(mlflow_client, run_id: str, *, metrics: Iterable = (), params: Iterable = (), tags: Iterable = ()) -> None:
    """One round trip for many values; MLflow caps a batch at 1000 metrics, so split."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    mlflow_client.log_batch(run_id, metrics=metrics[:1000], params=params, tags=tags)
    for start in range(1000, len(metrics), 1000):
        mlflow_client.log_batch(run_id, metrics=metrics[start : start + 1000])
