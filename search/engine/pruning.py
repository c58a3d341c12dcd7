"""Early stopping that stays fair: one Ray Tune ASHA scheduler per depth.

A deep stack often learns more slowly in its first epochs; a scheduler that compared it
with shallow trials at the same epoch would stop it for the wrong reason. Each depth's
trials are therefore only ever compared with trials of the same depth.
"""

from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from ..contracts import METRIC, TrialResult
from ..spec.schema import SearchSpec


class PerDepthScheduler(FIFOScheduler):
    """Delegates every decision to the scheduler of the trial's own depth; remembers whom it stopped."""

    def __init__(self, make: Callable[[], TrialScheduler]):
        super().__init__()
        self._make = make
        self._by_depth: dict[int, TrialScheduler] = {}
        self.pruned: set[str] = set()  # Ray trial ids stopped early

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


def make_scheduler(spec: SearchSpec) -> PerDepthScheduler | None:
    """The spec's pruning as a per-depth scheduler, or None when pruning is off."""
    pruning = spec.pruning
    if pruning.kind == "none" or spec.train.epochs <= pruning.grace_epochs:
        return None

    def asha() -> TrialScheduler:
        return AsyncHyperBandScheduler(
            time_attr="epoch",
            metric=METRIC,  # the running best: one noisy epoch does not decide a trial's fate
            mode="min",
            max_t=spec.train.epochs,
            grace_period=pruning.grace_epochs,
            reduction_factor=pruning.reduction,
            # A trial that reaches the last epoch must finish and report its weights.
            stop_last_trials=False,
        )

    return PerDepthScheduler(asha)
