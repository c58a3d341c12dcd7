"""A whole search, stage by stage: open the MLflow run tree, tune every depth, summarise, evaluate, publish."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .analysis.evaluation import evaluate_search
from .analysis.exports import publish
from .analysis.summary import summarise
from .engine.ray_setup import check_resources, quiet_ray_tune, start_ray, storage_path_for
from .engine.studies import finished_trials, open_storage, prepare_studies
from .engine.tuning import tune_depths
from .errors import ConfigError, SearchInterrupted
from .progress import Progress
from .spec.schema import SearchSpec
from .tracking import store
from .tracking.run_tree import close_run_tree, open_run_tree

log = logging.getLogger("stacktune")


def run_search(
    spec: SearchSpec,
    data,
    *,
    out: str | Path,
    tracking_uri: str,
    address: str | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    shared_storage: str | None = None,
) -> dict:
    """Runs the whole search (or what an interrupted one still owes) and returns comparison.json's content.

    `shared_storage` is where trial checkpoints go when trials run on several nodes (see storage_path_for);
    `progress` receives the milestones (nothing is printed without one).
    """
    import optuna

    progress = progress or Progress()
    quiet_ray_tune()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir = _output_folder(spec, out, resume=resume)
    # The studies first: on resume, they tell which trials a killed driver had finished.
    studies = prepare_studies(spec, open_storage(spec, out_dir), resume=resume)
    client = store.client(tracking_uri)
    tree = open_run_tree(client, spec, resume=resume, finished=finished_trials(studies))
    storage_path = storage_path_for(spec, out_dir, shared_storage)
    if not resume and shared_storage and "://" not in storage_path:
        shutil.rmtree(storage_path, ignore_errors=True)
    try:
        start_ray(address)
        check_resources(spec)
        trials = tune_depths(
            spec, data, studies, client=client, tree=tree, storage_path=storage_path, progress=progress, resume=resume
        )
        comparison = summarise(
            spec, studies, client=client, tree=tree, trials=trials, task=data.task, storage_path=storage_path
        )
        if spec.evaluation.enabled:
            evaluate_search(
                spec, studies, comparison, data, client=client, tree=tree, storage_path=storage_path, progress=progress
            )
        publish(comparison, out_dir, client=client, search_id=tree.search_id)
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, SearchInterrupted))
        close_run_tree(client, tree, "KILLED" if interrupted else "FAILED")
        raise
    close_run_tree(client, tree, "FINISHED")
    return comparison


def _output_folder(spec: SearchSpec, out: str | Path, *, resume: bool) -> Path:
    """OUT/NAME, emptied for a new search (an earlier one of the name is replaced), kept on resume."""
    out_dir = Path(out).resolve() / spec.name
    if resume and not out_dir.is_dir():
        raise ConfigError(f"nothing to resume: {out_dir} holds no search named {spec.name!r}")
    if not resume and out_dir.exists():
        log.info("replacing the earlier search in %s", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
