"""Early stopping that stays fair: one Ray Tune ASHA (or Hyperband) scheduler per depth, or the pruner of each
depth's Optuna study.

A deep stack often learns more slowly in its first epochs; a scheduler that compared it
with shallow trials at the same epoch would stop it for the wrong reason. Each depth's
trials are therefore only ever compared with trials of the same depth.
"""

from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from ..contracts import METRIC, TrialResult
from ..spec.schema import SearchSpec
from .searcher import DepthSearcher


class PerDepthScheduler(FIFOScheduler):
    """Delegates every decision to the scheduler of the trial's own depth; remembers whom it stopped."""

    def __init__(self, make: Callable[[], TrialScheduler], *, pruned: set[str]):
        super().__init__()
        self._make = make
        self._by_depth: dict[int, TrialScheduler] = {}
        self.pruned = pruned  # Ray trial ids stopped early

    def _for(self, trial) -> TrialScheduler:
        depth = trial.config["depth"]
        if depth not in self._by_depth:
            self._by_depth[depth] = self._make()
        return self._by_depth[depth]

    def set_search_properties(self, metric, mode, **spec) -> bool:
        # The inner schedulers carry their own metric; the run's metric is for the searcher.
        return True

    def on_trial_add(self, tune_controller, trial):
        self._for(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if TrialResult.of(result).final:
            return TrialScheduler.CONTINUE
        decision = self._for(trial).on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.pruned.add(trial.trial_id)
        return decision

    def on_trial_complete(self, tune_controller, trial, result):
        self._for(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial):
        self._for(trial).on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._for(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"Early stopping within each depth ({len(self._by_depth)} depths, {len(self.pruned)} stopped)"


class StudyPruning(FIFOScheduler):
    """Stops a trial when the pruner of its depth's Optuna study says so, after each epoch it reports."""

    def __init__(self, searcher: DepthSearcher, *, epochs: int):
        super().__init__()
        self._searcher, self._epochs = searcher, epochs
        self.pruned = searcher.pruned  # Ray trial ids stopped early

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_result(self, tune_controller, trial, result):
        # A trial that reaches the last epoch must finish and report its weights.
        last = TrialResult.of(result).epoch >= self._epochs
        if not last and self._searcher.should_prune(trial.trial_id, result):
            self.pruned.add(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"Early stopping by each depth's Optuna pruner ({len(self.pruned)} stopped)"


def make_scheduler(spec: SearchSpec, searcher: DepthSearcher) -> PerDepthScheduler | StudyPruning | None:
    """The spec's pruning as a Ray Tune scheduler that adds the trials it stops to `searcher.pruned` (so their
    studies are told they were pruned), or None when pruning is off."""
    pruning = spec.pruning
    if pruning.kind == "none" or spec.train.epochs <= pruning.grace_epochs:
        return None
    if pruning.kind == "median":
        return StudyPruning(searcher, epochs=spec.train.epochs)

    def asha() -> TrialScheduler:
        return AsyncHyperBandScheduler(
            time_attr="epoch",
            metric=METRIC,  # the running best: one noisy epoch does not decide a trial's fate
            mode="min",
            max_t=spec.train.epochs,
            grace_period=pruning.grace_epochs,
            reduction_factor=pruning.reduction,
            brackets=pruning.brackets if pruning.kind == "hyperband" else 1,
            # A trial that reaches the last epoch must finish and report its weights.
            stop_last_trials=False,
        )

    return PerDepthScheduler(asha, pruned=searcher.pruned)
