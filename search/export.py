"""A finished search's summary: comparison.json, the best configs, the MLflow bests, the table."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import tracking
from .config import SearchSpec, TrainConfig
from .errors import ConfigError, StacktuneError
from .single import config_yaml
from .space import suggest, to_train_config


def _trial_counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "completed": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }


def _depth_summary(spec, depth, study, *, client, depth_run, callback) -> dict[str, Any]:
    """One depth's entry of comparison.json; logs its best to MLflow on the way."""
    from optuna.trial import FixedTrial

    tally = callback.tally[depth]
    entry: dict[str, Any] = {
        "depth": depth,
        "best_val_loss": None,
        "best_config": None,
        "trials": _trial_counts(study),
        "params": None,
        "epochs": tally.epochs,
        "train_seconds": round(tally.seconds, 3),
        "mlflow_run_id": depth_run,
        "best_trial": None,
    }
    metrics = {f"trials_{k}": v for k, v in entry["trials"].items()} | {"epochs": tally.epochs, "train_seconds": tally.seconds}
    if entry["trials"]["completed"]:
        best = study.best_trial
        ray_id = best.user_attrs["ray_trial_id"]
        params = suggest(FixedTrial(best.params), depth=depth, spec=spec)
        cfg = to_train_config(spec, params, depth=depth)
        last, checkpoint = callback.finals.get(ray_id, ({}, None))
        run_id = callback.run_ids.get(ray_id)
        entry.update(
            best_val_loss=best.value,
            best_config=cfg.model_dump(mode="json", exclude_none=True),
            params=int(last["params"]) if "params" in last else None,
            best_trial={"name": f"d{depth}-t{best.number:02d}", "number": best.number, "mlflow_run_id": run_id},
        )
        metrics["best_val_loss"] = best.value
        if checkpoint is not None and run_id:
            with checkpoint.as_directory() as folder:
                client.log_artifacts(run_id, folder)
            client.set_tag(run_id, "stacktune.best", "true")
        tracking.log_batch(
            client,
            depth_run,
            params=tracking.as_params({f"best.{k}": v for k, v in params.items()} | {"depth": depth}),
            tags=tracking.as_tags({"stacktune.best_trial": entry["best_trial"]["name"], "stacktune.best_run_id": run_id or ""}),
        )
    tracking.log_batch(client, depth_run, metrics=tracking.epoch_metrics(0, metrics))
    return entry


def summarise(spec: SearchSpec, studies, *, client, experiment_id, search_id, depth_runs, callback, out_dir: Path) -> dict:
    """Builds comparison.json from the studies (read through Optuna), logs it and writes the exports."""
    depths = [
        _depth_summary(spec, d, studies[d], client=client, depth_run=depth_runs[d], callback=callback)
        for d in spec.depths
    ]
    comparison = {
        "search": spec.name,
        "experiment_id": experiment_id,
        "mlflow_run_id": search_id,
        "dataset": spec.dataset.model_dump(mode="json", exclude_none=True),
        "trials_per_depth": spec.trials_per_depth,
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
        metrics=tracking.epoch_metrics(0, {f"best_val_loss_d{d['depth']}": d["best_val_loss"] for d in ranked}),
    )
    write_exports(comparison, out_dir)
    client.log_artifact(search_id, str(out_dir / "comparison.json"))
    return comparison


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


def print_table(comparison: dict, *, out_dir: Path, tracking_uri: str) -> None:
    """The per-depth table on stdout, then where to look next."""
    header = f"{'depth':>5}  {'best val_loss':>13}  {'units':<22} {'lr':>9}  {'params':>8}  {'trials c/p/f':>12}  {'train time':>10}"
    print(header)
    print("-" * len(header))
    for d in comparison["depths"]:
        t = d["trials"]
        counts = f"{t['completed']}/{t['pruned']}/{t['failed']}"
        if d["best_config"] is None:
            print(f"{d['depth']:>5}  {'-':>13}  {'-':<22} {'-':>9}  {'-':>8}  {counts:>12}  {d['train_seconds']:>9.0f}s")
            continue
        cfg = d["best_config"]
        units = "[" + ", ".join(map(str, cfg["model"]["units"])) + "]"
        print(
            f"{d['depth']:>5}  {d['best_val_loss']:>13.5f}  {units:<22} {cfg['train']['lr']:>9.2e}  "
            f"{d['params']:>8}  {counts:>12}  {d['train_seconds']:>9.0f}s"
        )
    if "best_depth" in comparison:
        print(f"\nlowest validation loss: depth {comparison['best_depth']} (the best single trial of each depth, on the validation split)")
    print(f"\nbest configs:   {out_dir}/best/  (retrain: stacktune train {out_dir}/best/overall.yaml)")
    print(f"comparison:     {out_dir}/comparison.json")
    ui = f"mlflow ui --backend-store-uri {tracking_uri}" if not tracking_uri.startswith("http") else tracking_uri
    print(f"browse trials:  {ui}")


def export_command(args) -> int:
    """The CLI's `export`: the best configs of the latest finished search NAME, from MLflow alone."""
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    tracking.check_tracking(uri)
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(args.name)
    if experiment is None:
        raise ConfigError(f"no search named {args.name!r} in {uri}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{tracking.ROLE}` = 'search' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise StacktuneError(f"search {args.name!r} has no finished run in {uri}")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(runs[0].info.run_id, "comparison.json", tmp)
        comparison = json.loads(Path(path).read_text())
    out_dir = Path(args.out) / args.name
    for path in write_exports(comparison, out_dir):
        print(path)
    return 0
