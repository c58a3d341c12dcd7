"""The MLflow run tree of a search: search run ─► depth runs ─► one run per trial.

Trials are logged from the driver, through a Ray Tune callback, so workers need no
access to the tracking store and a retried trial keeps its one run. Writes go through a
`BufferedWriter`: while the tracking server does not answer, they are kept in order and
written once it answers again, and training does not wait for it.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ray.tune import Callback

from . import tracking
from .buffer import BufferedWriter
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


WRITE_INTERVAL = 1.0  # seconds over which trial writes are gathered


class TrialRuns(Callback):
    """Creates one MLflow run per trial under its depth run, logs each epoch, closes it once.

    A trial that Ray Tune restarts after its worker or node died keeps its run: the restart
    is counted in the `stacktune.restarts` tag and the new attempt's epochs are logged on top.
    """

    def __init__(
        self, *, client, experiment_id: str, spec: SearchSpec, depth_runs: dict[int, str], quiet: bool, pruned: set[str] | None = None,
        writer: BufferedWriter | None = None, final_wait: float = 60.0,
    ):
        self._pruned = pruned if pruned is not None else set()
        # Every result of every trial passes through the driver, and a trial waits while the driver
        # handles its last result: one write per epoch would stall the trials. Writes gathered over
        # a second go out as one batch per run.
        self._writer = writer if writer is not None else BufferedWriter(client, interval=WRITE_INTERVAL)
        self._final_wait = final_wait
        self._experiment_id = experiment_id
        self._spec = spec
        self._depth_runs = depth_runs
        self._quiet = quiet
        self._refs: dict[str, str] = {}  # Ray trial id -> the writer's key of its MLflow run
        self._ended: set[str] = set()  # Ray trial ids whose run's end is written or queued
        self.restarts: dict[str, int] = {}  # Ray trial id -> times Ray Tune restarted it
        self.finals: dict[str, tuple[dict, object]] = {}  # Ray trial id -> (last result, last checkpoint)
        self.curves: dict[str, list[float]] = {}  # Ray trial id -> val_loss per epoch (of its last attempt)
        self.tally = {depth: DepthTally() for depth in spec.depths}
        self._seen_node: set[str] = set()

    @property
    def run_ids(self) -> dict[str, str]:
        """Ray trial id -> MLflow run id, for the runs already created in MLflow."""
        return {trial_id: run_id for trial_id, ref in self._refs.items() if (run_id := self._writer.run_id(ref))}

    def _run_for(self, trial) -> str:
        ref = self._refs.get(trial.trial_id)
        if ref is not None:  # a restored or retried trial keeps its run
            return ref
        depth, number = trial.config["depth"], trial.config["number"]
        cfg = to_train_config(self._spec, trial.config["params"], depth=depth)
        ref = self._writer.create_run(
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
        self._refs[trial.trial_id] = ref
        self._writer.log_batch(ref, params=tracking.as_params(flat_params(cfg)))
        return ref

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_for(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        """Ray Tune restarts a trial whose worker or node died: same run, the restart noted on it."""
        ref = self._run_for(trial)
        count = self.restarts[trial.trial_id] = self.restarts.get(trial.trial_id, 0) + 1
        reason = _error_of(trial) or "its worker died"
        # The new attempt starts again at epoch 1; its curve replaces the lost one's.
        self.curves.pop(trial.trial_id, None)
        self._seen_node.discard(trial.trial_id)
        self._writer.log_batch(ref, tags=tracking.as_tags({"stacktune.restarts": count, "stacktune.restart_reason": reason}))
        if not self._quiet:
            name = f"d{trial.config['depth']}-t{trial.config['number']:02d}"
            print(f"  {name}: restarting after a failure ({reason})", file=sys.stderr, flush=True)

    def on_step_end(self, iteration, trials, **info):
        # Kept writes go out once the store answers again, even while no trial reports.
        self._writer.flush()

    def on_experiment_end(self, trials, **info):
        self._writer.close(wait=self._final_wait)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ref = self._run_for(trial)
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
        self._writer.log_batch(ref, metrics=metrics, tags=tracking.as_tags(tags))

    def _finish(self, trial, *, state: str, reason: str | None = None) -> None:
        ref = self._run_for(trial)
        last = trial.last_result or {}
        self.finals[trial.trial_id] = (last, trial.checkpoint)
        if state == "completed":
            state = "pruned" if trial.trial_id in self._pruned else last.get("state", state)
        tags = {tracking.STATE: state}
        if reason:
            tags["stacktune.reason"] = reason
        self._writer.log_batch(ref, tags=tracking.as_tags(tags))
        self._writer.set_terminated(ref, status="FINISHED" if state != "failed" else "FAILED")
        self._ended.add(trial.trial_id)
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
        reason = _error_of(trial) or "the trial raised"
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

    def close_open_runs(self, status: str = "KILLED", *, wait: float = 10.0) -> None:
        """Ends every trial run still open (an interrupted search leaves none RUNNING) and writes what is kept."""
        for trial_id, ref in self._refs.items():
            if trial_id not in self._ended:
                self._writer.set_terminated(ref, status=status)
                self._ended.add(trial_id)
        self._writer.close(wait=wait)


def _error_of(trial) -> str:
    """The last line of a trial's latest error, short enough for a tag.

    Ray Tune writes the error next to the driver first and syncs it to storage later, so the
    driver's copy is read when storage does not hold it yet.
    """
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - a reason is a courtesy; no reason is no failure
        error = None
    if error is None and getattr(trial, "error_file", None):
        try:
            error = Path(trial.error_file).read_text(errors="replace")
        except OSError:
            error = None
    lines = [line for line in str(error).strip().splitlines() if line.strip()] if error else []
    return lines[-1].strip()[:500] if lines else ""
