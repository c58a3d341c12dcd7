"""The tuning step: every depth's study, one Ray Tune run, each trial logged to the MLflow run tree."""

from __future__ import annotations

import time
from typing import Callable

from ray.tune import Callback

from ..contracts import METRIC
from ..errors import SearchInterrupted
from ..progress import Progress
from ..spec.schema import SearchSpec
from ..tracking.run_tree import RunTree
from ..tracking.tags import trial_name
from ..tracking.trial_runs import TrialRuns
from . import trainable
from .pruning import make_scheduler
from .ray_setup import make_tuner
from .searcher import DepthSearcher
from .signals import fit


class _FirstTrialStarted(Callback):
    """Calls `then` once, when Ray Tune starts the run's first trial."""

    def __init__(self, then: Callable[[], None]):
        self._then = then

    def on_trial_start(self, iteration, trials, trial, **info):
        if self._then is not None:
            then, self._then = self._then, None
            then()

    def __getstate__(self) -> dict:
        return {"_then": None}  # the driver's own function stays out of the run config Ray Tune saves


def ray_trial_name(trial) -> str:
    """A search trial's name in Ray Tune and its folder: the MLflow run name plus Ray's trial id."""
    config = trial.config
    return f"{trial_name(config['depth'], config['number'], config.get('replicate'))}-{trial.trial_id}"


def tune_depths(
    spec: SearchSpec,
    data,
    studies: dict,
    *,
    client,
    tree: RunTree,
    storage_path: str,
    progress: Progress,
    resume: bool,
    on_started: Callable[[], None] | None = None,
) -> TrialRuns:
    """Runs the trials every depth is still owed and returns the callback that logged them (bests, curves, run ids).
    `on_started` is called once, as the first trial starts.

    Raises SearchInterrupted on a stop signal, or when Ray Tune stopped before every depth had its trials.
    """
    # What Ray Tune is handed is pickled into its experiment folder: the study storage's URL, which
    # may hold a password, stays with the driver.
    shared_spec = spec.model_copy(update={"storage": None})
    searcher = DepthSearcher(shared_spec, studies)
    scheduler = make_scheduler(spec, searcher)
    runs = TrialRuns(
        client=client,
        experiment_id=tree.experiment_id,
        spec=shared_spec,
        depth_runs=tree.depth_runs,
        replicate_runs=tree.replicate_runs,
        progress=progress,
        pruned=searcher.pruned,
    )
    owed = searcher.remaining()
    if not owed:
        return runs
    tuner = make_tuner(
        trainable.run_trial,
        spec=spec,
        name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
        storage_path=storage_path,
        callbacks=[runs, *([_FirstTrialStarted(on_started)] if on_started else [])],
        data=data,
        trial_name=ray_trial_name,
        num_samples=searcher.most_trials(),
        search_alg=searcher,
        scheduler=scheduler,
        metric=METRIC,
        keep_checkpoints=1,
        spec_json=shared_spec.model_dump_json(),
    )
    if spec.budget.kind == "seconds":
        budget = f"{spec.budget.per_depth:g} s of training each (at most {spec.trials_per_depth} trials)"
    else:
        budget = f"{spec.trials_per_depth} trials each ({owed} to run)"
    if spec.replicates > 1:
        budget += f", in each of {spec.replicates} independent searches per depth"
    # A depth's seconds cover all its replicate searches, each with the full budget (as the trials do).
    seconds = spec.budget.per_depth * spec.replicates if spec.budget.kind == "seconds" else None
    progress.search_started(
        name=spec.name, depths=spec.depths, budget=budget, resume=resume, owed=owed, seconds=seconds
    )
    try:
        fit(tuner)  # raises SearchInterrupted on a stop signal
        # Ray Tune may still end a run early on its own; what is still owed tells an unfinished run apart.
        if (left := searcher.remaining()) > 0:
            raise SearchInterrupted(f"the search stopped with {left} trial(s) still to run")
    except BaseException:
        runs.close_open_runs()
        raise
    return runs
