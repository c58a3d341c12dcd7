"""A whole search, stage by stage: open the MLflow run tree, tune every depth, summarise, evaluate, publish."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from .engine.locks import search_lock
from .engine.ray_setup import check_resources, quiet_ray_tune, ray_for_search, storage_path_for
from .engine.signals import owned_signals
from .engine.studies import counted_trials, finished_trials, open_storage, prepare_studies, spent_seconds, trial_counts
from .engine.tuning import tune_depths
from .errors import (
    ConfigError,
    DiskUnusable,
    EvaluationIncomplete,
    ResultsNotPublished,
    UnreachableError,
    disk_error,
    first_line,
    interruption,
)
from .evaluation import evaluate_search, kept_evaluation, log_evaluation
from .folders import MARKER, check_output_folder, marked_search
from .preflight import check_before_ray
from .progress import DepthTally, Progress
from .publishing.exports import publish, write_comparison
from .publishing.summary import summarise
from .spec.convert import match_widths
from .spec.loading import check_origins, load_data, load_spec, parse
from .spec.schema import SearchSpec
from .tracking import store, tags
from .tracking.buffer import BufferedWriter
from .tracking.eval_runs import ended_eval_runs
from .tracking.models import check_model_name
from .tracking.models import register as register_best
from .tracking.run_tree import RunTree, close_run_tree, open_run_tree
from .verdict.comparison import Comparison

log = logging.getLogger("stacktune")


def run_search(
    spec: SearchSpec | dict | str | Path,
    data=None,
    *,
    out: str | Path = "stacktune-runs",
    tracking_uri: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    shared_storage: str | None = None,
    register: str | None = None,
) -> Comparison:
    """Runs the whole search (or what an interrupted one still owes) and returns its comparison.

    `spec` is a SearchSpec, a mapping written as a spec file is, or a spec file's path; `data` the prepared dataset,
    loaded from the spec when None. `tracking_uri` defaults to $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.
    Ray, its resources and the study storage are checked before anything is deleted or created; an earlier
    search of the name is kept aside until the new one has its studies and runs. `shared_storage` is where trial
    checkpoints go when trials run on several nodes (see storage_path_for); `progress` receives the milestones
    (nothing is printed without one). `register` names a registered model of MLflow's Model Registry to add the
    overall best model to, as a new version, once the results are published. A Ray started here is shut down before
    it returns; one the caller had initialised (ray.init) is used and left running.
    """
    import optuna

    if register is not None:
        check_model_name(register)
    spec, data = _spec_and_data(spec, data)
    # Every check that needs no Ray comes first, so that a refusal takes a second, not Ray's start-up.
    tracking_uri = check_before_ray(
        spec, out=out, shared_storage=shared_storage, tracking_uri=tracking_uri, address=address
    )
    progress = progress or Progress()
    with search_lock(spec, out):
        quiet_ray_tune()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # A Ray this call starts is shut down when it returns; one the caller started is left running.
        with ray_for_search(address):
            check_resources(spec)
            # Ray installs SIGTERM handlers of its own when it starts: the search's go in after them.
            with owned_signals():
                try:
                    return _run_locked(
                        spec,
                        data,
                        out=out,
                        tracking_uri=tracking_uri,
                        progress=progress,
                        resume=resume,
                        shared_storage=shared_storage,
                        register=register,
                    )
                finally:
                    progress.close()


def _spec_and_data(spec: SearchSpec | dict | str | Path, data):
    """The validated spec, with the data it names and every `units: {params: N}` width filled in for that data."""
    if isinstance(spec, dict):
        spec = parse(SearchSpec, spec, source="spec")
    elif not isinstance(spec, SearchSpec):
        spec = load_spec(spec)
    if data is None:
        data = load_data(spec.dataset, base_dir=None)
    check_origins(spec, data)
    return match_widths(spec, input_size=data.input_size, output_size=data.output_size, task=data.task), data


def _run_locked(
    spec: SearchSpec,
    data,
    *,
    out: str | Path,
    tracking_uri: str,
    progress: Progress,
    resume: bool,
    shared_storage: str | None,
    register: str | None,
) -> Comparison:
    """The search itself, once every check has passed and this process holds the search's locks."""
    out_dir, aside = _output_folder(spec, out, resume=resume)
    try:
        # The studies first: on resume, they tell which trials a killed driver had finished.
        studies = prepare_studies(spec, open_storage(spec, out_dir), resume=resume)
        client = store.client(tracking_uri)
        tree = open_run_tree(client, spec, resume=resume, finished=finished_trials(studies))
    except BaseException as exc:
        _put_back(aside, out_dir)
        _raise_if_disk(exc)
        raise
    if resume:
        progress.trials_kept(_kept_tallies(studies))
    storage_path = storage_path_for(spec, out_dir, shared_storage)
    if not resume and shared_storage and "://" not in storage_path:
        shutil.rmtree(storage_path, ignore_errors=True)  # the earlier search's checkpoints, never its results
    started: list[bool] = []

    def first_trial_started() -> None:
        # The new search is under way: only now is the earlier one deleted.
        started.append(True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    try:
        trials = tune_depths(
            spec,
            data,
            studies,
            client=client,
            tree=tree,
            storage_path=storage_path,
            progress=progress,
            resume=resume,
            on_started=first_trial_started,
        )
        if not started:
            first_trial_started()  # nothing was owed: the search is as far as it gets
        comparison = summarise(
            spec, studies, client=client, tree=tree, trials=trials, data=data, storage_path=storage_path
        )
    except BaseException as exc:
        close_run_tree(client, tree, _end_status(exc))
        if not started:
            _put_back(aside, out_dir)  # no trial started: the earlier search comes back as it was
            _raise_if_disk(exc)
        raise
    comparison = _evaluate_and_publish(
        spec,
        data,
        studies,
        comparison,
        client=client,
        tree=tree,
        out_dir=out_dir,
        storage_path=storage_path,
        progress=progress,
        resume=resume,
    )
    if register:
        _register(comparison, register, client=client, out_dir=out_dir)
    return comparison


def _kept_tallies(studies: dict) -> dict[int, DepthTally]:
    """Each depth's trials that an earlier attempt of a resumed search finished, over its replicate searches, as its
    progress counts them."""
    tallies: dict[int, DepthTally] = {}
    for (depth, _replicate), study in studies.items():
        losses = [t.value for t in counted_trials(study) if t.state.name == "COMPLETE" and t.value is not None]
        kept = DepthTally(**trial_counts(study), best=min(losses, default=float("inf")), seconds=spent_seconds(study))
        tallies[depth] = tallies[depth] + kept if depth in tallies else kept
    return tallies


def _raise_if_disk(exc: BaseException) -> None:
    """Before any trial started, a full or read-only disk is said as such: nothing ran, so there is nothing to
    resume."""
    disk = disk_error(exc)
    if disk is not None and not isinstance(exc, DiskUnusable):
        where = f" writing {disk.filename}" if disk.filename else ""
        raise DiskUnusable(
            f"{os.strerror(disk.errno).lower()}{where}; nothing was run: free some space (or choose another --out), "
            "then run it again"
        ) from None


def _register(comparison: Comparison, name: str, *, client, out_dir: Path) -> None:
    """Adds the overall best model to the Model Registry under `name`, after publishing (a failure here loses no
    result), and records the version in comparison.json, on disk and on the search run."""
    from mlflow.exceptions import MlflowException

    try:
        comparison.registered = register_best(client, comparison.to_dict(), name)
    except MlflowException as exc:
        raise UnreachableError(
            f"the search is published, but registering its best model as {name!r} failed ({first_line(exc)}); "
            f"try again with: stacktune export {comparison.search} --register {name}"
        ) from None
    client.log_artifact(comparison.mlflow_run_id, str(write_comparison(comparison, out_dir)))
    log.info("registered the best model as %s", comparison.registered.model_uri)


# Seconds the runs' ends (and what else is held) are tried for when a search stops on an error or Ctrl-C.
END_WAIT = 10.0


def _end_status(exc: BaseException) -> str:
    return "KILLED" if interruption(exc) is not None else "FAILED"


def _evaluate_and_publish(
    spec: SearchSpec,
    data,
    studies: dict,
    comparison: Comparison,
    *,
    client,
    tree: RunTree,
    out_dir: Path,
    storage_path: str,
    progress: Progress,
    resume: bool,
) -> Comparison:
    """Evaluates on the test split, publishes the comparison and report, ends the run tree; returns the comparison.

    Every MLflow write from here on goes through one BufferedWriter: while the tracking server does not answer, the
    retrainings go on, their runs are held, and publishing waits for it (bounded; the results are on disk first).
    A resume of a search that MLflow stopped while publishing publishes what it kept, without retraining.
    """
    writer = BufferedWriter(client, max_retry_after=10.0, background=True)
    try:
        kept = _kept_comparison(spec, comparison, out_dir, client=client, tree=tree) if resume else None
        if kept is not None:
            log.info("publishing the evaluation kept in %s (no retraining)", out_dir / "comparison.json")
            comparison = kept
            log_evaluation(writer, tree, comparison)
        elif spec.evaluation.enabled:
            # A resume finishes the jobs a cut-off evaluation still owes, in the same search run.
            done = ended_eval_runs(client, tree.experiment_id, tree.depth_runs, tree.replicate_runs) if resume else None
            evaluate_search(
                spec,
                studies,
                comparison,
                data,
                writer=writer,
                tree=tree,
                storage_path=storage_path,
                progress=progress,
                kept=done,
            )
        missing = comparison.evaluation.missing if comparison.evaluation is not None else None
        # An incomplete evaluation is published as such, its runs left KILLED for --resume to finish.
        publish(comparison, out_dir, writer=writer, tree=tree, status="KILLED" if missing else "FINISHED")
        if missing:
            raise EvaluationIncomplete(
                f"the evaluation is incomplete ({missing} of {comparison.evaluation.planned} retrainings did not "
                f"run), so the verdict is undecided; finish it by running the same command with --resume"
            )
    except ResultsNotPublished:
        raise  # the store did not answer for the whole wait: no end of a run can be written either
    except EvaluationIncomplete:
        raise  # published as incomplete, its runs already ended KILLED
    except BaseException as exc:
        for run_id in tree.run_ids:
            writer.set_terminated(writer.adopt(run_id), _end_status(exc))
        writer.close(wait=END_WAIT)
        raise
    return comparison


def _kept_comparison(spec: SearchSpec, comparison: Comparison, out_dir: Path, *, client, tree: RunTree):
    """The comparison.json an earlier attempt of this search left when MLflow stopped answering while it published,
    if it holds the evaluation this attempt would make and every evaluation run of it reached MLflow; else None."""
    try:
        saved = Comparison.from_dict(json.loads((out_dir / "comparison.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None  # none, or not one this version can read: evaluate again
    if (saved.evaluation is not None and saved.evaluation.missing) or not kept_evaluation(spec, comparison, saved):
        return None  # an incomplete evaluation is finished, never published again as it was
    depth_runs = set(tree.depth_runs.values()) | set(tree.replicate_runs.values())
    runs = client.search_runs(
        [tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'", max_results=50000
    )
    ended = [
        r for r in runs if r.data.tags.get(tags.PARENT_RUN_ID) in depth_runs and r.info.status in ("FINISHED", "FAILED")
    ]
    return saved if len(ended) == saved.evaluation.jobs else None


def _output_folder(spec: SearchSpec, out: str | Path, *, resume: bool) -> tuple[Path, Path | None]:
    """OUT/NAME, new and empty for a new search, kept on resume; and where an earlier search of the name was set
    aside (None when there was none). A folder stacktune did not make, or that another search's marker names, is
    refused before anything in it changes, never replaced."""
    out_dir = Path(out).resolve() / spec.name
    aside = None
    check_output_folder(out_dir, spec.name)  # again, under the lock
    if resume and not out_dir.is_dir():
        if not spec.storage:
            raise ConfigError(f"nothing to resume: {out_dir} holds no search named {spec.name!r}")
        # The studies are in a database (a submitted search whose head was lost, another machine): the folder is
        # made anew, and the studies and MLflow runs say what is done.
        log.info("resuming %s from its studies in the study database, in a new folder %s", spec.name, out_dir)
    if not resume and out_dir.exists():
        log.info("replacing the earlier search in %s", out_dir)
        aside = out_dir.with_name(f".{spec.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        out_dir.rename(aside)
    out_dir.mkdir(parents=True, exist_ok=True)
    if marked_search(out_dir) != spec.name:
        (out_dir / MARKER).write_text(f"search {spec.name}\n")
    return out_dir, aside


def _put_back(aside: Path | None, out_dir: Path) -> None:
    """Restores an earlier search set aside when the new one could not start."""
    if aside is None:
        return
    shutil.rmtree(out_dir, ignore_errors=True)
    aside.rename(out_dir)
