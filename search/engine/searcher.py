"""A thin Ray Tune Searcher: one Optuna study per depth (per replicate search of it), equal budgets, every outcome
told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ..contracts import METRIC, TrialResult
from ..spec.schema import SearchSpec
from ..tracking.tags import replicate_of
from .space import TrialSpace
from .studies import by_cell, counted_trials, spent_seconds

Cell = tuple[int, int]  # (depth, replicate)


class DepthSearcher(Searcher):
    """Routes each new Ray Tune trial to the study furthest behind and asks it: one study per depth, or per
    (depth, replicate) when each depth has several independent searches, all interleaved in one Ray Tune run.

    Ray Tune schedules and places trials; Optuna decides what to try. Completed, pruned and
    failed trials are all told to their study, so no sampler is starved of outcomes. "Behind" counts
    trials, or with `budget: {kind: seconds}` the training seconds a study's finished trials used.
    """

    def __init__(self, spec: SearchSpec, studies: dict):
        super().__init__(metric=METRIC, mode="min")
        self._spec = spec
        self._space = TrialSpace.of(spec)
        self._studies = studies = by_cell(studies)
        self._cells = list(studies)
        self.pruned: set[str] = set()  # Ray trial ids the scheduler stopped early (see pruning.make_scheduler)
        # A resumed study already holds finished trials; they count against the budget.
        self._asked = {cell: len(counted_trials(study)) for cell, study in studies.items()}
        self._spent = {cell: spent_seconds(study) for cell, study in studies.items()}
        self._live: dict[str, tuple[Cell, optuna.trial.Trial]] = {}
        self._reported: dict[str, int] = {}  # the last epoch told to each live trial's study

    @property
    def _seconds(self) -> float | None:
        budget = self._spec.budget
        return budget.per_depth if budget.kind == "seconds" else None

    def _owed(self, cell: Cell, asked: int) -> bool:
        if asked >= self._spec.trials_per_depth:
            return False
        return self._seconds is None or self._spent[cell] < self._seconds

    def remaining(self) -> int:
        """Trials still owed to some study (with a seconds budget, the studies still owed time): above zero after an
        interrupted run."""
        if self._seconds is None:
            return sum(max(0, self._spec.trials_per_depth - len(counted_trials(s))) for s in self._studies.values())
        return sum(self._owed(c, len(counted_trials(s))) for c, s in self._studies.items())

    def most_trials(self) -> int:
        """The most trials the search may still run: what Ray Tune is told to expect."""
        return sum(max(0, self._spec.trials_per_depth - self._asked[c]) for c in self._cells)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        behind = [c for c in self._cells if self._owed(c, self._asked[c])]
        if not behind:  # seconds spent and trials asked only grow: a study that is done stays done
            return Searcher.FINISHED
        cell = min(behind, key=lambda c: (self._spent[c], self._asked[c]) if self._seconds else self._asked[c])
        depth, replicate = cell
        trial = self._studies[cell].ask()
        trial.set_user_attr("ray_trial_id", trial_id)
        self._asked[cell] += 1
        self._live[trial_id] = (cell, trial)
        params = self._space.sample(trial, depth)
        # `replicate` is None in a search of one replicate per depth: no name or tag then carries it.
        return {
            "depth": depth,
            "replicate": replicate_of(self._spec.replicates, replicate),
            "number": trial.number,
            "params": params,
        }

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Intermediate values let TPE rank pruned trials by how far they got.
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> optuna.trial.Trial | None:
        """Tells the trial's study an epoch's validation loss, once per epoch; returns the study's trial."""
        _, trial = self._live.get(trial_id, (None, None))
        reported = TrialResult.of(result)
        if trial is not None and not reported.final and reported.finite_val_loss:
            epoch = int(reported.epoch)
            if epoch > self._reported.get(trial_id, 0):
                trial.report(float(reported.val_loss), epoch)
                self._reported[trial_id] = epoch
        return trial

    def should_prune(self, trial_id: str, result: dict) -> bool:
        """Whether the pruner of the trial's study stops it after this result (its epoch's loss told first)."""
        trial = self._report(trial_id, result)
        return trial is not None and not TrialResult.of(result).final and trial.should_prune()

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        cell, trial = self._live.pop(trial_id, (None, None))
        self._reported.pop(trial_id, None)
        if trial is None:
            return
        study = self._studies[cell]
        if not result:
            study.tell(trial, state=TrialState.FAIL)
            return
        reported = TrialResult.of(result)
        self._spent[cell] += reported.train_seconds
        trial.set_user_attr("epoch", reported.epoch)
        trial.set_user_attr("train_seconds", reported.train_seconds)
        if reported.params is not None:
            trial.set_user_attr("params", reported.params)
        state = "pruned" if trial_id in self.pruned else reported.state
        if error or state == "failed":
            study.tell(trial, state=TrialState.FAIL)
        elif state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, float(reported.best_val_loss))

    def __getstate__(self) -> dict:
        # Ray Tune pickles the searcher into the experiment folder. The studies stay out: they live in
        # Optuna's storage, whose URL may hold a password.
        state = self.__dict__.copy()
        state.update(_studies={}, _live={}, _reported={})
        return state

    def save(self, checkpoint_path: str) -> None:
        # The studies live in Optuna storage; only the budget count is the searcher's own.
        asked = {f"{depth}:{replicate}": n for (depth, replicate), n in self._asked.items()}
        Path(checkpoint_path).write_text(json.dumps({"asked": asked}))

    def restore(self, checkpoint_path: str) -> None:
        asked = json.loads(Path(checkpoint_path).read_text())["asked"]
        for key, n in asked.items():
            depth, _, replicate = key.partition(":")  # an older checkpoint keys by depth alone: its first replicate
            self._asked[(int(depth), int(replicate or 1))] = n
