"""A finished search's summary: comparison.json, the best configs, the MLflow bests, the table."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


from . import tracking
from .config import SearchSpec, TrainConfig
from .errors import ConfigError, StacktuneError
from .single import config_yaml
from .space import suggest, to_train_config


def _trial_counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    from .searcher import counted_trials

    states = [t.state for t in counted_trials(study)]
    return {
        "completed": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }


def _importance(study) -> dict[str, float] | None:
    """What mattered in one depth's study (Optuna's fANOVA), or None with too few trials to tell."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    try:
        importance = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError):
        return None
    return {name: float(value) for name, value in importance.items()} or None


def top_configs(spec: SearchSpec, study, depth: int, k: int) -> list[TrainConfig]:
    """The `k` best completed trials of a depth's study, as train configs."""
    from optuna.trial import FixedTrial, TrialState

    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value)[:k]
    return [to_train_config(spec, suggest(FixedTrial(t.params), depth=depth, spec=spec), depth=depth) for t in done]


def _run_of(client, depth_run: str, ray_id: str) -> str | None:
    """The MLflow run of a trial that ran before a resume, found by its Ray trial id."""
    experiment_id = client.get_run(depth_run).info.experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`stacktune.ray_trial_id` = '{ray_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _saved_checkpoint(storage_path: str, ray_id: str) -> Path | None:
    """The newest checkpoint folder a trial left in Ray's storage (on a filesystem this process sees), if any."""
    if "://" in storage_path:
        return None
    found = sorted(Path(storage_path).glob(f"*/*-{ray_id}/checkpoint_*"))
    return found[-1] if found else None


def _depth_summary(spec, depth, study, *, client, depth_run, callback, storage_path: str) -> dict[str, Any]:
    """One depth's entry of comparison.json; logs its best to MLflow on the way."""
    from optuna.trial import FixedTrial

    from .stats import expected_best, expected_best_std

    from .searcher import counted_trials

    counted = counted_trials(study)
    epochs = sum(int(t.user_attrs.get("epoch", 0)) for t in counted)
    seconds = sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in counted)
    entry: dict[str, Any] = {
        "depth": depth,
        "best_val_loss": None,
        "best_config": None,
        "trials": _trial_counts(study),
        "params": None,
        "epochs": epochs,
        "train_seconds": round(seconds, 3),
        "mlflow_run_id": depth_run,
        "best_trial": None,
    }
    values = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
    entry["expected_best"] = expected_best(values, n_max=spec.trials_per_depth)
    entry["expected_best_std"] = expected_best_std(values, n_max=spec.trials_per_depth)
    entry["importance"] = _importance(study)
    metrics = {f"trials_{k}": v for k, v in entry["trials"].items()} | {"epochs": epochs, "train_seconds": seconds}
    if entry["trials"]["completed"]:
        best = study.best_trial
        ray_id = best.user_attrs["ray_trial_id"]
        params = suggest(FixedTrial(best.params), depth=depth, spec=spec)
        cfg = to_train_config(spec, params, depth=depth)
        _, checkpoint = callback.finals.get(ray_id, ({}, None))
        run_id = callback.run_ids.get(ray_id) or _run_of(client, depth_run, ray_id)
        entry.update(
            best_val_loss=best.value,
            best_config=cfg.model_dump(mode="json", exclude_none=True),
            params=int(best.user_attrs["params"]) if "params" in best.user_attrs else None,
            best_trial={"name": f"d{depth}-t{best.number:02d}", "number": best.number, "mlflow_run_id": run_id},
            val_curve=callback.curves.get(ray_id, []),
        )
        metrics["best_val_loss"] = best.value
        if checkpoint is not None and run_id:
            with checkpoint.as_directory() as folder:
                client.log_artifacts(run_id, folder)
        elif run_id and (saved := _saved_checkpoint(storage_path, ray_id)) is not None:
            client.log_artifacts(run_id, str(saved))  # the best trial ran before a resume
        if run_id:
            client.set_tag(run_id, "stacktune.best", "true")
        tracking.log_batch(
            client,
            depth_run,
            params=tracking.as_params({f"best.{k}": v for k, v in params.items()} | {"depth": depth}),
            tags=tracking.as_tags({"stacktune.best_trial": entry["best_trial"]["name"], "stacktune.best_run_id": run_id or ""}),
        )
    tracking.log_batch(client, depth_run, metrics=tracking.epoch_metrics(0, metrics))
    return entry


def summarise(spec: SearchSpec, studies, *, client, experiment_id, search_id, depth_runs, callback, task: str, storage_path: str) -> dict:
    """Builds comparison.json from the studies (read through Optuna) and logs each depth's best."""
    depths = [
        _depth_summary(spec, d, studies[d], client=client, depth_run=depth_runs[d], callback=callback, storage_path=storage_path)
        for d in spec.depths
    ]
    comparison = {
        "search": spec.name,
        "experiment_id": experiment_id,
        "mlflow_run_id": search_id,
        "dataset": spec.dataset.model_dump(mode="json", exclude_none=True),
        "task": task,
        "trials_per_depth": spec.trials_per_depth,
        "evaluation": None,
        "baseline": spec.baseline.model_dump() if spec.baseline is not None and spec.evaluation.seeds else None,
        "depths": depths,
    }
    ranked = [d for d in depths if d["best_val_loss"] is not None]
    if ranked:
        winner = min(ranked, key=lambda d: d["best_val_loss"])
        comparison["best_depth"] = winner["depth"]
        client.set_tag(search_id, "stacktune.best_depth", str(winner["depth"]))
    tracking.log_batch(
        client,
        search_id,
        metrics=tracking.epoch_metrics(
            0,
            {f"best_val_loss_d{d['depth']}": d["best_val_loss"] for d in ranked}
            | ({"best_val_loss": min(d["best_val_loss"] for d in ranked)} if ranked else {}),
        ),
    )
    return comparison


def publish(comparison: dict, out_dir: Path, *, client, search_id: str) -> None:
    """Writes comparison.json, the exports and the report, and attaches them to the search run."""
    from .report import write_report

    write_exports(comparison, out_dir)
    client.log_artifact(search_id, str(out_dir / "comparison.json"))
    for path in write_report(comparison, out_dir):
        client.log_artifact(search_id, str(path), artifact_path="report")


def write_exports(comparison: dict, out_dir: Path) -> list[Path]:
    """Writes comparison.json and best/depth-<d>.yaml plus best/overall.yaml; returns the config paths."""
    best_dir = out_dir / "best"
    best_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps(comparison, indent=2) + "\n")
    written = []
    ranked = [d for d in comparison["depths"] if d["best_config"] is not None]
    for entry in ranked:
        path = best_dir / f"depth-{entry['depth']}.yaml"
        path.write_text(_export_yaml(comparison, entry))
        written.append(path)
    if ranked:
        winner = min(ranked, key=lambda d: d["best_val_loss"])
        path = best_dir / "overall.yaml"
        path.write_text(_export_yaml(comparison, winner))
        written.append(path)
    return written


def _export_yaml(comparison: dict, entry: dict) -> str:
    cfg = TrainConfig.model_validate(entry["best_config"])
    cfg.metrics = {"val_loss": entry["best_val_loss"], "params": entry["params"]}
    cfg.source = {
        "search": comparison["search"],
        "depth": entry["depth"],
        "trial": entry["best_trial"]["name"],
        "mlflow_run_id": entry["best_trial"]["mlflow_run_id"],
    }
    return config_yaml(cfg)


def _mean_ci(block: dict | None) -> str:
    if not block or block.get("test_loss_mean") is None:
        return "-"
    low, high = block["test_loss_ci95"]
    return f"{block['test_loss_mean']:.4f} [{low:.4f}, {high:.4f}]"


def print_table(comparison: dict, *, out_dir: Path, tracking_uri: str) -> None:
    """The per-depth table on stdout, the verdict, then where to look next."""
    def units_of(d: dict) -> str:
        return "[" + ", ".join(map(str, d["best_config"]["model"]["units"])) + "]" if d["best_config"] else "-"

    uw = max(18, *(len(units_of(d)) for d in comparison["depths"]))
    header = (
        f"{'depth':>5}  {'best val':>9}  {'units':<{uw}} {'lr':>8}  {'params':>7}  {'trials c/p/f':>12}  {'time':>6}  "
        f"{'test loss, tuned [95% CI]':<27}  {'test loss, fixed [95% CI]':<27}"
    )
    print(header)
    print("-" * len(header))
    for d in comparison["depths"]:
        t = d["trials"]
        counts = f"{t['completed']}/{t['pruned']}/{t['failed']}  {d['train_seconds']:>5.0f}s"
        tuned, fixed = _mean_ci(d), _mean_ci(d.get("fixed"))
        if d["best_config"] is None:
            print(f"{d['depth']:>5}  {'-':>9}  {'-':<{uw}} {'-':>8}  {'-':>7}  {counts:>20}  {tuned:<27}  {fixed:<27}")
            continue
        cfg = d["best_config"]
        print(
            f"{d['depth']:>5}  {d['best_val_loss']:>9.4f}  {units_of(d):<{uw}} {cfg['train']['lr']:>8.1e}  "
            f"{d['params'] or 0:>7}  {counts:>20}  {tuned:<27}  {fixed:<27}"
        )
    if comparison.get("conclusion"):
        print(f"\n{comparison['conclusion']}")
    elif "best_depth" in comparison:
        print(f"\nlowest validation loss: depth {comparison['best_depth']} (the best single trial of each depth; no test-split evaluation)")
    if (out_dir / "report.md").exists():
        print(f"\nreport:         {out_dir}/report.md")
    print(f"best configs:   {out_dir}/best/  (retrain: stacktune train {out_dir}/best/overall.yaml)")
    print(f"comparison:     {out_dir}/comparison.json")
    store = "" if tracking_uri == tracking.DEFAULT_TRACKING_URI else f" --tracking-uri {tracking_uri}"
    print(f"browse trials:  stacktune ui --name {comparison['search']}{store}")


def latest_comparison(name: str, tracking_uri: str | None) -> tuple[Any, str, dict]:
    """The client, the run id and comparison.json of the latest finished search NAME, from MLflow alone."""
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_tracking(uri)
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"no search named {name!r} in {uri}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{tracking.ROLE}` = 'search' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise StacktuneError(f"search {name!r} has no finished run in {uri}")
    run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "comparison.json", tmp)
        return client, run_id, json.loads(Path(path).read_text())


def export_command(args) -> int:
    """The CLI's `export`: the best configs of the latest finished search NAME, from MLflow alone."""
    _, _, comparison = latest_comparison(args.name, args.tracking_uri)
    for path in write_exports(comparison, Path(args.out) / args.name):
        print(path)
    return 0


def report_command(args) -> int:
    """The CLI's `report`: rebuilds report.md and its plots from MLflow alone and attaches them again."""
    from .report import write_report

    client, run_id, comparison = latest_comparison(args.name, args.tracking_uri)
    out_dir = Path(args.out) / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_report(comparison, out_dir)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path="report")
        print(path)
    return 0
