"""The MLflow run tree of a search: search run ─► depth runs ─► one run per trial.

Trials are logged from the driver, through a Ray Tune callback, so workers need no
access to the tracking store and a retried trial keeps its one run.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from ray.tune import Callback

from . import tracking
from .config import SearchSpec
from .single import flat_params
from .space import to_train_config

log = logging.getLogger("stacktune")
_EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy")


@dataclass
class DepthTally:
    """What the progress display and the summary count for one depth."""

    completed: int = 0
    pruned: int = 0
    failed: int = 0
    epochs: int = 0
    best: float = float("inf")
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.completed + self.pruned + self.failed


class TrialRuns(Callback):
    """Creates one MLflow run per trial under its depth run, logs each epoch, closes it once."""

    def __init__(
        self, *, client, experiment_id: str, spec: SearchSpec, depth_runs: dict[int, str], quiet: bool, pruned: set[str] | None = None
    ):
        self._pruned = pruned if pruned is not None else set()
        self._client = client
        self._experiment_id = experiment_id
        self._spec = spec
        self._depth_runs = depth_runs
        self._quiet = quiet
        self.run_ids: dict[str, str] = {}  # Ray trial id -> MLflow run id
        self.finals: dict[str, tuple[dict, object]] = {}  # Ray trial id -> (last result, last checkpoint)
        self.curves: dict[str, list[float]] = {}  # Ray trial id -> val_loss per epoch
        self.tally = {depth: DepthTally() for depth in spec.depths}
        self._seen_node: set[str] = set()

    def _run_for(self, trial) -> str:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is not None:  # a restored or retried trial keeps its run
            return run_id
        depth, number = trial.config["depth"], trial.config["number"]
        cfg = to_train_config(self._spec, trial.config["params"], depth=depth)
        run = self._client.create_run(
            self._experiment_id,
            run_name=f"d{depth}-t{number:02d}",
            tags={
                "mlflow.parentRunId": self._depth_runs[depth],
                tracking.ROLE: "trial",
                tracking.DEPTH: str(depth),
                tracking.SEARCH: self._spec.name,
                "stacktune.trial_number": str(number),
                "stacktune.ray_trial_id": trial.trial_id,
            },
        )
        self.run_ids[trial.trial_id] = run.info.run_id
        tracking.log_batch(self._client, run.info.run_id, params=tracking.as_params(flat_params(cfg)))
        return run.info.run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_for(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self._run_for(trial)
        tags = {}
        if trial.trial_id not in self._seen_node and result.get("node_id"):
            self._seen_node.add(trial.trial_id)
            tags["stacktune.node_id"] = result["node_id"]
        if result.get("final"):
            metrics = tracking.epoch_metrics(result["epoch"], {"best_val_loss": result["best_val_loss"], "n_params": result["params"]})
            tags[tracking.STATE] = result["state"]
            if result.get("reason"):
                tags["stacktune.reason"] = result["reason"]
        else:
            metrics = tracking.epoch_metrics(result["epoch"], {k: result.get(k) for k in _EPOCH_METRICS})
            self.curves.setdefault(trial.trial_id, []).append(float(result["val_loss"]))
        tracking.log_batch(self._client, run_id, metrics=metrics, tags=tracking.as_tags(tags))

    def _finish(self, trial, *, state: str, reason: str | None = None) -> None:
        run_id = self._run_for(trial)
        last = trial.last_result or {}
        self.finals[trial.trial_id] = (last, trial.checkpoint)
        if state == "completed":
            state = "pruned" if trial.trial_id in self._pruned else last.get("state", state)
        tags = {tracking.STATE: state}
        if reason:
            tags["stacktune.reason"] = reason
        tracking.log_batch(self._client, run_id, tags=tracking.as_tags(tags))
        self._client.set_terminated(run_id, status="FINISHED" if state != "failed" else "FAILED")
        tally = self.tally[trial.config["depth"]]
        setattr(tally, state, getattr(tally, state) + 1)
        tally.epochs += int(last.get("epoch", 0) or 0)
        tally.seconds += float(last.get("train_seconds", 0.0) or 0.0)
        if state == "completed":
            tally.best = min(tally.best, float(last.get("best_val_loss", float("inf"))))
        self._progress(trial.config["depth"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, state="completed")

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial.get_error()
        reason = str(error).strip().splitlines()[-1][:500] if error else "the trial raised"
        self._finish(trial, state="failed", reason=reason)

    def _progress(self, depth: int) -> None:
        if self._quiet:
            return
        t = self.tally[depth]
        best = f"{t.best:.5f}" if t.best < float("inf") else "-"
        print(
            f"  depth {depth}: {t.done}/{self._spec.trials_per_depth} trials "
            f"({t.completed} completed, {t.pruned} pruned, {t.failed} failed), best val_loss {best}",
            file=sys.stderr,
            flush=True,
        )

    def close_open_runs(self, status: str = "KILLED") -> None:
        """Ends every trial run still open (an interrupted search leaves none RUNNING)."""
        for run_id in self.run_ids.values():
            if self._client.get_run(run_id).info.status == "RUNNING":
                self._client.set_terminated(run_id, status=status)
