"""One MLflow run per evaluation retraining, under its depth run (`stacktune.role=eval`).

An evaluation job is the dict Ray Tune passes as the trial's config["job"]: depth, kind ("tuned" or
"fixed"), rank (among a depth's top-k), its `seeds` (trained one after another in the trial, each reporting its
own result with its `seed`) and the train config. Each seed's retraining is logged as a run of its own the moment
it reports; a seed that never reported (its trial failed) is logged as a failed run.

Runs are written through a `BufferedWriter`, as trials are: while the tracking server does not answer,
the retrainings go on and their runs are kept, in order, and written once it answers again.
"""

from __future__ import annotations

import time

from ray.tune import Callback

from ..progress import Progress
from ..spec.convert import SEED_OFFSET, flat_params
from ..spec.schema import TrainConfig
from . import store, tags
from .buffer import BufferedWriter

# The metrics a job reports that its run keeps, as the run names them: what a resumed evaluation reads back.
_KEPT_METRICS = {
    "val_loss": "val_loss",
    "test_loss": "test_loss",
    "val_accuracy": "val_accuracy",
    "test_accuracy": "test_accuracy",
    "train_seconds": "train_seconds",
    "n_params": "params",
}

HOLDING = "evaluation runs are kept and written when it answers again; the retrainings go on"


class EvalRuns(Callback):
    """Logs each finished evaluation job as one MLflow run under its depth run.

    What `writer` could not write yet is left queued at the end: publishing waits for it (see exports.publish).
    """

    def __init__(
        self,
        *,
        writer: BufferedWriter,
        experiment_id: str,
        search: str,
        depth_runs: dict[int, str],
        replicate_runs: dict[tuple[int, int], str] | None = None,
        progress: Progress | None = None,
    ):
        self._writer, self._experiment_id, self._search, self._depth_runs = writer, experiment_id, search, depth_runs
        self._replicate_runs = replicate_runs or {}  # a replicate search's retrainings go under its run
        self._progress = progress or Progress()
        self._jobs = self._round_start = 0
        self.results: list[tuple[dict, dict]] = []  # (one seed's job, its metrics) for every retraining, failed too
        self._logged: dict[str, set[int]] = {}  # trial id -> its seeds already logged (a retried trial reports again)

    def round_started(self, jobs: int) -> None:
        """A round of `jobs` retrainings begins: progress counts them from one again."""
        self._jobs, self._round_start = jobs, len(self.results)

    def __getstate__(self) -> dict:
        # Kept out of the run config Ray Tune saves (see TrialRuns): the client, and any password in its URI.
        return {**self.__dict__, "_writer": None, "_progress": None}

    def _done(self, job: dict, metrics: dict) -> None:
        self.results.append((job, metrics))
        self._progress.retraining_finished(
            done=len(self.results) - self._round_start,
            jobs=self._jobs,
            depth=job["depth"],
            kind=job["kind"]
            + (f" (search {job['replicate']})" if job.get("replicate") else "")
            + (f" (origin {job['origin']})" if job.get("origin") else ""),
            seed=seed_number(job["seed"]),
            test_loss=metrics.get("test_loss"),
        )

    def _log(self, job: dict, metrics: dict, status: str) -> None:
        cfg = TrainConfig.model_validate(job["config"])
        cfg.train.seed = job["seed"]
        rank = f"-r{job['rank']}" if job["rank"] else ""
        kind = "best" if job["kind"] == "tuned" else "fixed"
        replicate = job.get("replicate")  # a tuned job of a search with several replicate searches per depth
        parent = self._replicate_runs.get((job["depth"], replicate), self._depth_runs[job["depth"]])
        extra = {tags.REPLICATE: str(replicate)} if replicate is not None else {}
        origin = job.get("origin")  # the data origin, where the evaluation has several
        if origin is not None:
            extra[tags.ORIGIN] = str(origin)
        if int(metrics.get("together") or 1) > 1:  # trained as one of a batched model's seeds
            extra[tags.SEEDS_TOGETHER] = str(int(metrics["together"]))
        number = seed_number(job["seed"])
        ended = int(time.time() * 1000)
        # The run is written once the job is done; its start is when training began.
        started = ended - int(1000 * float(metrics.get("train_seconds", 0.0) or 0.0))
        ref = self._writer.create_run(
            self._experiment_id,
            start_time=started,
            run_name=f"d{job['depth']}{f'-rep{replicate}' if replicate else ''}-{kind}{rank}-{number}"
            + (f"-o{origin}" if origin is not None else ""),
            tags={
                **extra,
                tags.PARENT_RUN_ID: parent,
                tags.ROLE: tags.ROLE_EVAL,
                tags.DEPTH: str(job["depth"]),
                tags.SEARCH: self._search,
                tags.EVAL_KIND: job["kind"],
                tags.SEED: str(job["seed"]),
                tags.EVAL_RANK: str(job["rank"]),
                tags.STATE: "completed" if status == "FINISHED" else "failed",
            },
        )
        values = {
            k: metrics.get(k) for k in ("val_loss", "test_loss", "val_accuracy", "test_accuracy", "train_seconds")
        }
        values["n_params"] = metrics.get("params")
        self._writer.log_batch(
            ref,
            params=store.as_params(flat_params(cfg)),
            metrics=store.epoch_metrics(int(metrics.get("epochs", 0) or 0), values, timestamp_ms=ended),
        )
        self._writer.set_terminated(ref, status=status)

    def on_step_end(self, iteration, trials, **info):
        # Kept writes go out once the store answers again, even while no job finishes.
        self._writer.flush()

    def _ended(self, trial, seed: int, metrics: dict, status: str) -> None:
        """One seed of `trial`'s job has ended: its run is written and its result kept, once per trial and seed."""
        logged = self._logged.setdefault(trial.trial_id, set())
        if seed in logged:
            return
        logged.add(seed)
        job = {key: value for key, value in trial.config["job"].items() if key != "seeds"} | {"seed": seed}
        self._log(job, metrics, status)
        self._done(job, metrics)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "seed" in result:
            # A diverged retraining (no test loss) is kept: the verdict counts it as the worst outcome.
            self._ended(trial, int(result["seed"]), result, "FINISHED" if "test_loss" in result else "FAILED")

    def _unreported(self, trial) -> None:
        """Every seed of `trial`'s job that has not reported is logged as failed: none, unless it failed or returned
        early."""
        for seed in trial.config["job"]["seeds"]:
            self._ended(trial, seed, {}, "FAILED")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._unreported(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._unreported(trial)


def seed_number(seed: int) -> int:
    """A seed as the runs and progress count them: 1, 2, ... within its evaluation."""
    return seed % SEED_OFFSET + 1


def job_key(job: dict) -> tuple[int, str, int, int, int, int]:
    """What tells evaluation jobs apart: depth, kind, rank, seed, replicate search and data origin (each 1 where
    there is one)."""
    return (
        int(job["depth"]),
        str(job["kind"]),
        int(job["rank"]),
        int(job["seed"]),
        int(job.get("replicate") or 1),
        int(job.get("origin") or 1),
    )


def ended_eval_runs(
    client, experiment_id: str, depth_runs: dict[int, str], replicate_runs: dict | None = None
) -> dict[tuple, dict]:
    """The evaluation jobs an earlier, cut-off attempt of this search finished: job_key -> the metrics its run holds
    (without a test loss where it failed), read from the ended evaluation runs under `depth_runs` (and under
    `replicate_runs`, the runs of a depth's replicate searches)."""
    parents = set(depth_runs.values()) | set((replicate_runs or {}).values())
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'", max_results=50000
    )
    kept: dict[tuple, dict] = {}
    for run in runs:
        t = run.data.tags
        if t.get(tags.PARENT_RUN_ID) not in parents or run.info.status not in ("FINISHED", "FAILED"):
            continue
        rank = t.get(tags.EVAL_RANK) or _rank_from_name(run.info.run_name or "")
        key = (
            int(t[tags.DEPTH]),
            t[tags.EVAL_KIND],
            int(rank),
            int(t[tags.SEED]),
            int(t.get(tags.REPLICATE) or 1),
            int(t.get(tags.ORIGIN) or 1),
        )
        logged = run.data.metrics
        metrics = {name: logged[metric] for metric, name in _KEPT_METRICS.items() if metric in logged}
        if run.info.status == "FAILED":
            metrics.pop("test_loss", None)
        kept[key] = metrics
    return kept


def _rank_from_name(name: str) -> int:
    """The rank in a run name `d1-best-r2-3` (runs written before the rank had a tag); 0 without one."""
    parts = [p for p in name.split("-") if p.startswith("r") and p[1:].isdigit()]
    return int(parts[0][1:]) if parts else 0
