"""Multi-seed re-evaluation on the test split, the fixed-setting baseline, and the verdict.

Each depth's best configuration (top-k) and the one fixed setting people usually use are
retrained with the same seeds on the training split, the best epoch chosen on validation,
and scored on the test split that the search never saw. The jobs run on Ray Tune like trials
and are logged to MLflow under their depth run (`stacktune.role=eval`).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from ..engine.ray_setup import make_tuner
from ..engine.studies import top_configs
from ..engine.trainable import pick_device
from ..progress import Progress
from ..spec.convert import baseline_config, build, evaluation_seeds
from ..spec.schema import SearchSpec, TrainConfig
from ..tracking import store, tags
from ..tracking.eval_runs import EvalRuns
from ..tracking.run_tree import RunTree
from . import stats
from .comparison import Comparison


def plan_jobs(spec: SearchSpec, candidates: dict[int, list[TrainConfig]]) -> list[dict[str, Any]]:
    """One job per (depth, tuned candidate or fixed setting, seed)."""
    jobs = []
    for depth in spec.depths:
        configs = [("tuned", rank, cfg) for rank, cfg in enumerate(candidates.get(depth, []))]
        if spec.baseline is not None:
            configs.append(("fixed", 0, baseline_config(spec, depth)))
        for kind, rank, cfg in configs:
            for seed in evaluation_seeds(spec):
                jobs.append(
                    {"depth": depth, "kind": kind, "rank": rank, "seed": seed, "config": cfg.model_dump(mode="json")}
                )
    return jobs


def run_eval(config: dict[str, Any], *, data, threads: int, gpus: float = 0.0) -> None:
    """Retrains one configuration with one seed and reports its validation and test scores."""
    import torch
    from ray import tune

    from stacktune.models import evaluate, fit

    job = config["job"]
    cfg = TrainConfig.model_validate(job["config"])
    cfg.train.seed = job["seed"]
    device = pick_device(gpus, cuda_available=torch.cuda.is_available())
    model_cfg, settings = build(cfg, data, threads=threads, device=device)
    result = fit(model_cfg, data, settings)
    metrics = {
        "val_loss": result.best_val_loss,
        "params": result.params,
        "epochs": len(result.epochs),
        "train_seconds": sum(e.seconds for e in result.epochs),
        "state": result.state,
    }
    if result.state != "diverged":
        test = evaluate(result.model, data.test, task=data.task, device=device)
        metrics["test_loss"] = test["loss"]
        if "accuracy" in test:
            metrics["test_accuracy"] = test["accuracy"]
            metrics["val_accuracy"] = evaluate(result.model, data.val, task=data.task, device=device)["accuracy"]
    tune.report(metrics)


def _job_name(trial) -> str:
    job = trial.config["job"]
    return f"d{job['depth']}-{job['kind']}{job['rank']}-s{job['seed']}-{trial.trial_id}"


def run_jobs(
    spec: SearchSpec, jobs: list[dict], data, *, storage_path: str, client, tree: RunTree
) -> list[tuple[dict, dict]]:
    """Runs the evaluation jobs on Ray Tune and returns (job, metrics) for each that finished."""
    from ray import tune

    callback = EvalRuns(client=client, experiment_id=tree.experiment_id, search=spec.name, depth_runs=tree.depth_runs)
    tuner = make_tuner(
        run_eval,
        spec=spec,
        name="evaluation",
        storage_path=storage_path,
        callbacks=[callback],
        data=data,
        trial_name=_job_name,
        param_space={"job": tune.grid_search(jobs)},
        threads=max(1, int(spec.resources.cpus_per_trial)),
        gpus=spec.resources.gpus_per_trial,
    )
    with contextlib.redirect_stdout(sys.stderr):
        tuner.fit()
    return callback.results


def _describe(verdict: stats.Verdict) -> str:
    if verdict.winner is not None:
        return f"depth {verdict.winner} wins"
    return "depths " + " and ".join(map(str, verdict.tied)) + " tie for first"


def aggregate(spec: SearchSpec, comparison: Comparison, results: list[tuple[dict, dict]]) -> Comparison:
    """Adds test-loss means, intervals, the verdicts and the conclusion to `comparison` (and returns it)."""
    conf = spec.evaluation.confidence
    tuned: dict[int, list[float]] = {}
    fixed: dict[int, list[float]] = {}
    for entry in comparison.depths:
        runs = [(job, m) for job, m in results if job["depth"] == entry.depth]
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
            entry.test_loss_mean, entry.test_loss_ci95, entry.test_losses = mean, ci.as_list(), losses
            entry.seeds, entry.evaluated_rank = [job["seed"] for job, _ in chosen], rank
            if chosen[0][0]["rank"] != 0 or len(by_rank) > 1:
                entry.evaluated_config = chosen[0][0]["config"]
            accuracies = [m["test_accuracy"] for _, m in chosen if "test_accuracy" in m]
            if accuracies:
                entry.test_accuracy_mean = sum(accuracies) / len(accuracies)
            tuned[entry.depth] = losses
        base = sorted(((job, m) for job, m in runs if job["kind"] == "fixed"), key=lambda jm: jm[0]["seed"])
        if base:
            losses = [m["test_loss"] for _, m in base]
            mean, ci = stats.mean_ci(losses, confidence=conf, seed=spec.seed)
            entry.fixed = {
                "config": base[0][0]["config"],
                "params": int(base[0][1]["params"]),
                "test_loss_mean": mean,
                "test_loss_ci95": ci.as_list(),
                "test_losses": losses,
            }
            fixed[entry.depth] = losses
    if tuned:
        verdict = stats.compare(tuned, confidence=conf, seed=spec.seed)
        comparison.verdict = verdict.to_dict()
        sentence = f"Tuned separately, {_describe(verdict)}."
        if fixed:
            fixed_verdict = stats.compare(fixed, confidence=conf, seed=spec.seed)
            comparison.fixed_verdict = fixed_verdict.to_dict()
            changed = verdict.tied != fixed_verdict.tied
            comparison.conclusion_changed = changed
            b = spec.baseline
            sentence = (
                f"Tuned separately, {_describe(verdict)}; "
                f"with one fixed setting ({b.units} units per layer, lr {b.lr:g}) "
                f"{_describe(fixed_verdict)}: the conclusion {'changed' if changed else 'is the same'}."
            )
        comparison.conclusion = sentence
    return comparison


def evaluate_search(
    spec: SearchSpec,
    studies: dict,
    comparison: Comparison,
    data,
    *,
    client,
    tree: RunTree,
    storage_path: str,
    progress: Progress,
) -> None:
    """Retrains every depth's best (and the fixed setting) over the seeds, then adds the verdict to `comparison`."""
    candidates = {d: top_configs(spec, studies[d], d, spec.evaluation.top_k) for d in spec.depths}
    jobs = plan_jobs(spec, candidates)
    if not jobs:
        return
    progress.evaluation_started(jobs=len(jobs), seeds=spec.evaluation.seeds)
    results = run_jobs(spec, jobs, data, storage_path=storage_path, client=client, tree=tree)
    aggregate(spec, comparison, results)
    comparison.evaluation = {
        "seeds": evaluation_seeds(spec),
        "refit": "train",
        "top_k": spec.evaluation.top_k,
        "confidence": spec.evaluation.confidence,
        "jobs": len(jobs),
        "finished": len(results),
    }
    _log_evaluation(client, tree, comparison)


def _log_evaluation(client, tree: RunTree, comparison: Comparison) -> None:
    """The test figures on each depth run, and the conclusion on the search run (tags and its note)."""
    for entry in comparison.depths:
        values = {
            "test_loss_mean": entry.test_loss_mean,
            "fixed_test_loss_mean": (entry.fixed or {}).get("test_loss_mean"),
        }
        if entry.test_loss_ci95:
            values.update(test_loss_ci_low=entry.test_loss_ci95[0], test_loss_ci_high=entry.test_loss_ci95[1])
        store.log_batch(client, tree.depth_runs[entry.depth], metrics=store.epoch_metrics(0, values))
    if comparison.conclusion:
        winner = comparison.verdict["winner"]
        note = client.get_run(tree.search_id).data.tags.get(tags.NOTE, "") + "\n\n" + comparison.conclusion
        found = {tags.VERDICT: comparison.conclusion, tags.WINNER: str(winner or "tie"), tags.NOTE: note}
        store.log_batch(client, tree.search_id, tags=store.as_tags(found))
