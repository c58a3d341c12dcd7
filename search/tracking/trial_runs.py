"""The MLflow run tree of a search: search run ─► depth runs ─► one run per trial.

Trials are logged from the driver, through a Ray Tune callback, so workers need no
access to the tracking store and a retried trial keeps its one run. Writes go through a
`BufferedWriter`: while the tracking server does not answer, they are kept in order and
written once it answers again, and training does not wait for it.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from ..contracts import TrialResult
from ..progress import DepthTally, Progress
from ..spec.convert import flat_params, shared_settings, train_config
from ..spec.schema import SearchSpec
from . import store, tags
from .buffer import BufferedWriter

WRITE_INTERVAL = 1.0  # seconds over which trial writes are gathered


class TrialRuns(Callback):
    """Creates one MLflow run per trial under its depth run, logs each epoch, closes it once.

    A trial that Ray Tune restarts after its worker or node died keeps its run: the restart
    is counted in the `stacktune.restarts` tag and the new attempt's epochs are logged on top.
    """

    def __init__(
        self,
        *,
        client,
        experiment_id: str,
        spec: SearchSpec,
        depth_runs: dict[int, str],
        replicate_runs: dict[tuple[int, int], str] | None = None,
        progress: Progress | None = None,
        pruned: set[str] | None = None,
        writer: BufferedWriter | None = None,
        final_wait: float = 60.0,
    ):
        self._pruned = pruned if pruned is not None else set()
        # Every result of every trial passes through the driver, and a trial waits while the driver
        # handles its last result: one write per epoch would stall the trials. Writes gathered over
        # a second go out as one batch per run, from a thread of the writer's own, off Ray Tune's loop.
        if writer is None:
            writer = BufferedWriter(client, interval=WRITE_INTERVAL, background=True)
        self._writer = writer
        self._final_wait = final_wait
        self._experiment_id = experiment_id
        self._spec = spec
        self._shared = shared_settings(spec)  # what every trial's train config shares
        self._depth_runs = depth_runs
        self._replicate_runs = replicate_runs or {}
        self._progress = progress or Progress()
        self._refs: dict[str, str] = {}  # Ray trial id -> the writer's key of its MLflow run
        self._ended: set[str] = set()  # Ray trial ids whose run's end is written or queued
        self.restarts: dict[str, int] = {}  # Ray trial id -> times Ray Tune restarted it
        self.finals: dict[str, tuple[dict, object]] = {}  # Ray trial id -> (last result, last checkpoint)
        self.curves: dict[str, list[float]] = {}  # Ray trial id -> val_loss per epoch (of its last attempt)
        self.tally = {depth: DepthTally() for depth in spec.depths}
        self._seen_node: set[str] = set()

    def __getstate__(self) -> dict:
        # Ray Tune saves its run config, callbacks included, for a restore that stacktune never uses (a resume
        # rebuilds from the studies): the MLflow client, and a database password in its URI, stay out of it.
        return {**self.__dict__, "_writer": None}

    @property
    def run_ids(self) -> dict[str, str]:
        """Ray trial id -> MLflow run id, for the runs already created in MLflow."""
        return {trial_id: run_id for trial_id, ref in self._refs.items() if (run_id := self._writer.run_id(ref))}

    def _run_for(self, trial) -> str:
        ref = self._refs.get(trial.trial_id)
        if ref is not None:  # a restored or retried trial keeps its run
            return ref
        depth, number = trial.config["depth"], trial.config["number"]
        replicate = trial.config.get("replicate")  # None: the search has one replicate per depth
        cfg = train_config(self._shared, trial.config["params"], depth=depth)
        run_tags = {
            tags.PARENT_RUN_ID: self._replicate_runs.get((depth, replicate or 1), self._depth_runs[depth]),
            tags.ROLE: tags.ROLE_TRIAL,
            tags.DEPTH: str(depth),
            tags.SEARCH: self._spec.name,
            tags.TRIAL_NUMBER: str(number),
            tags.RAY_TRIAL_ID: trial.trial_id,
        }
        if replicate is not None:
            run_tags[tags.REPLICATE] = str(replicate)
        ref = self._writer.create_run(
            self._experiment_id, run_name=tags.trial_name(depth, number, replicate), tags=run_tags
        )
        self._refs[trial.trial_id] = ref
        self._writer.log_batch(ref, params=store.as_params(flat_params(cfg)))
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
        self._writer.log_batch(ref, tags=store.as_tags({tags.RESTARTS: count, tags.RESTART_REASON: reason}))
        name = tags.trial_name(trial.config["depth"], trial.config["number"], trial.config.get("replicate"))
        self._progress.trial_restarted(name, reason)

    def on_step_end(self, iteration, trials, **info):
        # Kept writes go out once the store answers again, even while no trial reports.
        self._writer.flush()

    def on_experiment_end(self, trials, **info):
        self._writer.close(wait=self._final_wait)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ref = self._run_for(trial)
        reported = TrialResult.of(result)
        new_tags = {}
        if trial.trial_id not in self._seen_node and reported.node_id:
            self._seen_node.add(trial.trial_id)
            new_tags[tags.NODE_ID] = reported.node_id
        if reported.final:
            metrics = store.epoch_metrics(
                reported.epoch, {"best_val_loss": reported.best_val_loss, "n_params": reported.params}
            )
            new_tags[tags.STATE] = reported.state
            if reported.reason:
                new_tags[tags.REASON] = reported.reason
        else:
            values = {
                "train_loss": reported.train_loss,
                "val_loss": reported.val_loss,
                "val_accuracy": reported.val_accuracy,
            }
            metrics = store.epoch_metrics(reported.epoch, values)
            self.curves.setdefault(trial.trial_id, []).append(float(reported.val_loss))
        self._writer.log_batch(ref, metrics=metrics, tags=store.as_tags(new_tags))

    def _finish(self, trial, *, state: str, reason: str | None = None) -> None:
        ref = self._run_for(trial)
        last = trial.last_result or {}
        self.finals[trial.trial_id] = (last, trial.checkpoint)
        reported = TrialResult.of(last)
        if state == "completed":
            state = "pruned" if trial.trial_id in self._pruned else (reported.state or state)
        new_tags = {tags.STATE: state}
        if reason:
            new_tags[tags.REASON] = reason
        self._writer.log_batch(ref, tags=store.as_tags(new_tags))
        self._writer.set_terminated(ref, status="FINISHED" if state != "failed" else "FAILED")
        self._ended.add(trial.trial_id)
        depth = trial.config["depth"]
        tally = self.tally[depth]
        setattr(tally, state, getattr(tally, state) + 1)
        tally.seconds += reported.train_seconds
        if state == "completed":
            tally.best = min(tally.best, float(reported.best_val_loss))
        budget = self._spec.budget
        # A depth's count covers all its replicate searches, each with the full budget.
        seconds = budget.per_depth * self._spec.replicates if budget.kind == "seconds" else None
        trials = self._spec.trials_per_depth * self._spec.replicates
        self._progress.trial_finished(depth, tally, trials=trials, seconds=seconds)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, state="completed")

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = _error_of(trial) or "the trial raised"
        self._finish(trial, state="failed", reason=reason)

    def close_open_runs(self, status: str = "KILLED", *, wait: float = 10.0) -> None:
        """Ends every trial run still open (an interrupted search leaves none RUNNING) and writes what is kept."""
        for trial_id, ref in self._refs.items():
            if trial_id not in self._ended:
                if status == "KILLED":  # tagged as a resume tags the trials a killed driver left open
                    self._writer.log_batch(ref, tags=store.as_tags({tags.STATE: "interrupted"}))
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
