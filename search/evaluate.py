"""Multi-seed re-evaluation on the test split, the fixed-setting baseline, and the verdict.

Each depth's best configuration (top-k) and the one fixed setting people usually use are
retrained with the same seeds on the training split, the best epoch chosen on validation,
and scored on the test split that the search never saw. The jobs run on Ray Tune like trials
and are logged to MLflow under their depth run (`stacktune.role=eval`).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

from ray import tune
from ray.tune import Callback

from . import stats, tracking
from .config import SearchSpec, TrainConfig
from .single import build, flat_params

log = logging.getLogger("stacktune")
SEED_OFFSET = 1000  # evaluation seeds differ from the search's, so no trial's lucky start is reused


def baseline_config(spec: SearchSpec, depth: int) -> TrainConfig:
    """Every layer the same fixed width and one learning rate: the comparison people make today."""
    b = spec.baseline
    return TrainConfig.model_validate(
        {
            "dataset": spec.dataset.model_dump(exclude_none=True),
            "model": {"units": [b.units] * depth, "dropout": b.dropout if depth > 1 else 0.0},
            "train": {
                "lr": b.lr,
                "epochs": spec.train.epochs,
                "batch_size": b.batch_size or spec.train.batch_size,
                "optimizer": spec.train.optimizer,
                "grad_clip": spec.train.grad_clip,
                "seed": spec.seed,
            },
        }
    )


def evaluation_seeds(spec: SearchSpec) -> list[int]:
    """The seeds every evaluated configuration is retrained with."""
    return [spec.seed * SEED_OFFSET + SEED_OFFSET + i for i in range(spec.evaluation.seeds)]


def plan_jobs(spec: SearchSpec, candidates: dict[int, list[TrainConfig]]) -> list[dict[str, Any]]:
    """One job per (depth, tuned candidate or fixed setting, seed)."""
    jobs = []
    for depth in spec.depths:
        configs = [("tuned", rank, cfg) for rank, cfg in enumerate(candidates.get(depth, []))]
        if spec.baseline is not None:
            configs.append(("fixed", 0, baseline_config(spec, depth)))
        for kind, rank, cfg in configs:
            for seed in evaluation_seeds(spec):
                jobs.append({"depth": depth, "kind": kind, "rank": rank, "seed": seed, "config": cfg.model_dump(mode="json")})
    return jobs


def run_eval(config: dict[str, Any], *, data, threads: int, gpus: float = 0.0) -> None:
    """Retrains one configuration with one seed and reports its validation and test scores."""
    import torch

    from stacktune.models import evaluate, fit

    from .trainable import pick_device

    job = config["job"]
    cfg = TrainConfig.model_validate(job["config"])
    cfg.train.seed = job["seed"]
    device = pick_device(gpus, cuda_available=torch.cuda.is_available())
    model_cfg, settings = build(cfg, data, threads=threads, device=device)
    result = fit(model_cfg, data, settings)
    metrics = {"val_loss": result.best_val_loss, "params": result.params, "epochs": len(result.epochs),
               "train_seconds": sum(e.seconds for e in result.epochs), "state": result.state}
    if result.state != "diverged":
        test = evaluate(result.model, data.test, task=data.task, device=device)
        metrics["test_loss"] = test["loss"]
        if "accuracy" in test:
            metrics["test_accuracy"] = test["accuracy"]
            metrics["val_accuracy"] = evaluate(result.model, data.val, task=data.task, device=device)["accuracy"]
    tune.report(metrics)


class EvalRuns(Callback):
    """Logs each finished evaluation job as one MLflow run under its depth run."""

    def __init__(self, *, client, experiment_id: str, search: str, depth_runs: dict[int, str]):
        self._client, self._experiment_id, self._search, self._depth_runs = client, experiment_id, search, depth_runs
        self.results: list[tuple[dict, dict]] = []

    def _log(self, trial, metrics: dict, status: str) -> None:
        job = trial.config["job"]
        cfg = TrainConfig.model_validate(job["config"])
        cfg.train.seed = job["seed"]
        rank = f"-r{job['rank']}" if job["rank"] else ""
        kind = "best" if job["kind"] == "tuned" else "fixed"
        number = job["seed"] % SEED_OFFSET + 1
        ended = int(time.time() * 1000)
        # The run is written once the job is done; its start is when training began.
        started = ended - int(1000 * float(metrics.get("train_seconds", 0.0) or 0.0))
        run = self._client.create_run(
            self._experiment_id,
            start_time=started,
            run_name=f"d{job['depth']}-{kind}{rank}-{number}",
            tags={
                "mlflow.parentRunId": self._depth_runs[job["depth"]],
                tracking.ROLE: "eval",
                tracking.DEPTH: str(job["depth"]),
                tracking.SEARCH: self._search,
                "stacktune.eval_kind": job["kind"],
                "stacktune.seed": str(job["seed"]),
                tracking.STATE: "completed" if status == "FINISHED" else "failed",
            },
        )
        values = {k: metrics.get(k) for k in ("val_loss", "test_loss", "val_accuracy", "test_accuracy", "train_seconds")}
        values["n_params"] = metrics.get("params")
        tracking.log_batch(
            self._client, run.info.run_id,
            params=tracking.as_params(flat_params(cfg)),
            metrics=tracking.epoch_metrics(int(metrics.get("epochs", 0) or 0), values),
        )
        self._client.set_terminated(run.info.run_id, status=status, end_time=ended)

    def on_trial_complete(self, iteration, trials, trial, **info):
        metrics = trial.last_result or {}
        ok = "test_loss" in metrics
        self._log(trial, metrics, "FINISHED" if ok else "FAILED")
        if ok:
            self.results.append((trial.config["job"], metrics))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._log(trial, trial.last_result or {}, "FAILED")


def run_jobs(spec: SearchSpec, jobs: list[dict], data, *, storage_path: str, client, experiment_id: str, depth_runs: dict[int, str]) -> list[tuple[dict, dict]]:
    """Runs the evaluation jobs on Ray Tune and returns (job, metrics) for each that finished."""
    callback = EvalRuns(client=client, experiment_id=experiment_id, search=spec.name, depth_runs=depth_runs)
    threads = max(1, int(spec.resources.cpus_per_trial))
    trainable = tune.with_resources(
        tune.with_parameters(run_eval, data=data, threads=threads, gpus=spec.resources.gpus_per_trial),
        {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"job": tune.grid_search(jobs)},
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=spec.resources.max_concurrent,
            trial_name_creator=_job_name,
            trial_dirname_creator=_job_name,
        ),
        run_config=tune.RunConfig(
            name="evaluation",
            storage_path=storage_path,
            callbacks=[callback],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
        ),
    )
    with contextlib.redirect_stdout(sys.stderr):
        tuner.fit()
    return callback.results


def _job_name(trial) -> str:
    job = trial.config["job"]
    return f"d{job['depth']}-{job['kind']}{job['rank']}-s{job['seed']}-{trial.trial_id}"


def _describe(verdict: stats.Verdict) -> str:
    if verdict.winner is not None:
        return f"depth {verdict.winner} wins"
    return "depths " + " and ".join(map(str, verdict.tied)) + " tie for first"


def aggregate(spec: SearchSpec, comparison: dict, results: list[tuple[dict, dict]]) -> dict:
    """Adds test-loss means, intervals, the verdicts and the conclusion to `comparison` (and returns it)."""
    conf = spec.evaluation.confidence
    tuned: dict[int, list[float]] = {}
    fixed: dict[int, list[float]] = {}
    for entry in comparison["depths"]:
        depth = entry["depth"]
        runs = [(job, m) for job, m in results if job["depth"] == depth]
        by_rank: dict[int, list[tuple[dict, dict]]] = {}
        for job, m in runs:
            if job["kind"] == "tuned":
                by_rank.setdefault(job["rank"], []).append((job, m))
        if by_rank:
            # With top-k candidates, the depth is represented by the one best on validation, then scored on test.
            rank = min(by_rank, key=lambda r: sum(m["val_loss"] for _, m in by_rank[r]) / len(by_rank[r]))
            chosen = sorted(by_rank[rank], key=lambda jm: jm[0]["seed"])
            losses = [m["test_loss"] for _, m in chosen]
            mean, ci = stats.mean_ci(losses, confidence=conf, seed=spec.seed)
            entry.update(test_loss_mean=mean, test_loss_ci95=ci.as_list(), test_losses=losses,
                         seeds=[job["seed"] for job, _ in chosen], evaluated_rank=rank)
            if chosen[0][0]["rank"] != 0 or len(by_rank) > 1:
                entry["evaluated_config"] = chosen[0][0]["config"]
            accuracies = [m["test_accuracy"] for _, m in chosen if "test_accuracy" in m]
            if accuracies:
                entry["test_accuracy_mean"] = sum(accuracies) / len(accuracies)
            tuned[depth] = losses
        base = sorted(((job, m) for job, m in runs if job["kind"] == "fixed"), key=lambda jm: jm[0]["seed"])
        if base:
            losses = [m["test_loss"] for _, m in base]
            mean, ci = stats.mean_ci(losses, confidence=conf, seed=spec.seed)
            entry["fixed"] = {"config": base[0][0]["config"], "params": int(base[0][1]["params"]),
                              "test_loss_mean": mean, "test_loss_ci95": ci.as_list(), "test_losses": losses}
            fixed[depth] = losses
    comparison["verdict"] = comparison["fixed_verdict"] = comparison["conclusion_changed"] = None
    if tuned:
        verdict = stats.compare(tuned, confidence=conf, seed=spec.seed)
        comparison["verdict"] = verdict.to_dict()
        sentence = f"Tuned separately, {_describe(verdict)}."
        if fixed:
            fixed_verdict = stats.compare(fixed, confidence=conf, seed=spec.seed)
            comparison["fixed_verdict"] = fixed_verdict.to_dict()
            changed = verdict.tied != fixed_verdict.tied
            comparison["conclusion_changed"] = changed
            b = spec.baseline
            sentence = (
                f"Tuned separately, {_describe(verdict)}; with one fixed setting ({b.units} units per layer, lr {b.lr:g}) "
                f"{_describe(fixed_verdict)}: the conclusion {'changed' if changed else 'is the same'}."
            )
        comparison["conclusion"] = sentence
    return comparison


def evaluate_search(spec: SearchSpec, studies, comparison: dict, data, *, client, experiment_id: str,
                    depth_runs: dict[int, str], search_id: str, storage_path: str, quiet: bool) -> None:
    """Retrains every depth's best (and the fixed setting) over the seeds, then adds the verdict to `comparison`."""
    from .export import top_configs

    candidates = {d: top_configs(spec, studies[d], d, spec.evaluation.top_k) for d in spec.depths}
    jobs = plan_jobs(spec, candidates)
    if not jobs:
        return
    if not quiet:
        print(f"evaluating on the test split: {len(jobs)} retrainings ({spec.evaluation.seeds} seeds each)", file=sys.stderr)
    results = run_jobs(spec, jobs, data, storage_path=storage_path, client=client, experiment_id=experiment_id, depth_runs=depth_runs)
    aggregate(spec, comparison, results)
    comparison["evaluation"] = {
        "seeds": evaluation_seeds(spec),
        "refit": "train",
        "top_k": spec.evaluation.top_k,
        "confidence": spec.evaluation.confidence,
        "jobs": len(jobs),
        "finished": len(results),
    }
    for entry in comparison["depths"]:
        values = {"test_loss_mean": entry.get("test_loss_mean"), "fixed_test_loss_mean": (entry.get("fixed") or {}).get("test_loss_mean")}
        if entry.get("test_loss_ci95"):
            values.update(test_loss_ci_low=entry["test_loss_ci95"][0], test_loss_ci_high=entry["test_loss_ci95"][1])
        tracking.log_batch(client, depth_runs[entry["depth"]], metrics=tracking.epoch_metrics(0, values))
    if comparison.get("conclusion"):
        verdict = comparison["verdict"]
        tags = {"stacktune.verdict": comparison["conclusion"], "stacktune.winner": str(verdict["winner"] or "tie")}
        tags["mlflow.note.content"] = client.get_run(search_id).data.tags.get("mlflow.note.content", "") + "\n\n" + comparison["conclusion"]
        tracking.log_batch(client, search_id, tags=tracking.as_tags(tags))
