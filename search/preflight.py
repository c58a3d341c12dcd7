"""Every check of a search that needs no Ray: run first, so that a refusal takes a second, not Ray's start-up.

Kept free of Ray, Ray Tune and the verdict, evaluation and publishing modules, whose imports alone take seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .engine.ray_setup import check_ray_temp_dir
from .engine.studies import check_storage
from .engine.trainable import check_search_precision
from .folders import check_paths
from .spec.schema import SearchSpec
from .tracking import store

log = logging.getLogger("stacktune")


def check_before_ray(
    spec: SearchSpec,
    *,
    out: str | Path,
    shared_storage: str | None,
    tracking_uri: str | None,
    address: str | None,
) -> str:
    """Raises a one-line StacktuneError for anything that would stop the search, of what can be known without Ray:
    the output and checkpoint folders, the tracking store, the precision, the study database and, for a local Ray,
    its temp folder. Returns the tracking URI to use."""
    check_paths(spec, out, shared_storage)
    log.debug("output folder: %s; checkpoints: %s", Path(out).resolve() / spec.name, shared_storage or "in it")
    uri = store.resolve_tracking_uri(tracking_uri)
    store.check_tracking(uri)
    log.debug("MLflow tracking URI: %s", store.redact(uri))
    check_search_precision(spec)  # bf16 on a CPU that cannot run it
    check_storage(spec)
    if spec.storage:
        log.debug("study storage: %s", store.redact(spec.storage))
    if not address:
        check_ray_temp_dir()
    return uri
