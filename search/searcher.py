"""A thin Ray Tune Searcher: one Optuna study per depth, equal budgets, every outcome told."""
from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from .config import SearchSpec
from .space import suggest

log = logging.getLogger("stacktune")


def study_name(search: str, depth: int) -> str:
    """The Optuna study that holds one depth of a search."""
    return f"{search}.depth-{depth}"


def make_sampler(spec: SearchSpec, depth: int) -> optuna.samplers.BaseSampler:
    """The sampler of one depth's study, seeded so a search is repeatable."""
    seed = spec.seed * 1000 + depth
    if spec.sampler.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # multivariate: units and lr interact; constant_liar: several trials of a depth run at once.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=spec.sampler.n_startup_trials, multivariate=True, constant_liar=True
        )


def counted_trials(study: optuna.Study) -> list:
    """The finished trials that count against a depth's budget (not those cut off by a killed driver)."""
    return [
        t for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and not t.user_attrs.get("interrupted")
    ]


class DepthSearcher(Searcher):
    """Routes each new Ray Tune trial to the depth furthest behind and asks that depth's study.

    Ray Tune schedules and places trials; Optuna decides what to try. Completed, pruned and
    failed trials are all told to their study, so no sampler is starved of outcomes.
    """

    def __init__(
        self, spec: SearchSpec, studies: dict[int, optuna.Study], *, metric: str = "val_loss", pruned: set[str] | None = None
    ):
        super().__init__(metric=metric, mode="min")
        self._spec = spec
        self._studies = studies
        self._pruned = pruned if pruned is not None else set()
        # A resumed study already holds finished trials; they count against the budget.
        self._asked = {depth: len(counted_trials(study)) for depth, study in studies.items()}
        self._live: dict[str, tuple[int, optuna.trial.Trial]] = {}

    def remaining(self) -> int:
        """Trials still owed to some depth: above zero after an interrupted run."""
        return sum(self._spec.trials_per_depth - len(counted_trials(s)) for s in self._studies.values())

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        behind = [d for d in self._spec.depths if self._asked[d] < self._spec.trials_per_depth]
        if not behind:
            return Searcher.FINISHED
        depth = min(behind, key=lambda d: self._asked[d])
        trial = self._studies[depth].ask()
        trial.set_user_attr("ray_trial_id", trial_id)
        self._asked[depth] += 1
        self._live[trial_id] = (depth, trial)
        return {"depth": depth, "number": trial.number, "params": suggest(trial, depth=depth, spec=self._spec)}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Intermediate values let TPE rank pruned trials by how far they got.
        depth, trial = self._live.get(trial_id, (None, None))
        if trial is not None and not result.get("final") and math.isfinite(result.get("val_loss", math.nan)):
            trial.report(float(result["val_loss"]), int(result["epoch"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        depth, trial = self._live.pop(trial_id, (None, None))
        if trial is None:
            return
        study = self._studies[depth]
        result = result or {}
        for key in ("epoch", "train_seconds", "params"):
            if key in result:
                trial.set_user_attr(key, result[key])
        state = "pruned" if trial_id in self._pruned else result.get("state")
        if error or not result or state == "failed":
            study.tell(trial, state=TrialState.FAIL)
        elif state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, float(result["best_val_loss"]))

    def __getstate__(self) -> dict:
        # Ray Tune pickles the searcher into the experiment folder. The studies stay out: they live in
        # Optuna's storage, whose URL may hold a password.
        state = self.__dict__.copy()
        state.update(_studies={}, _live={})
        return state

    def save(self, checkpoint_path: str) -> None:
        # The studies live in Optuna storage; only the budget count is the searcher's own.
        Path(checkpoint_path).write_text(json.dumps({"asked": self._asked}))

    def restore(self, checkpoint_path: str) -> None:
        asked = json.loads(Path(checkpoint_path).read_text())["asked"]
        self._asked.update({int(depth): n for depth, n in asked.items()})
