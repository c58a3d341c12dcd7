"""`stacktune train`: one configuration, trained once and logged as one MLflow run."""
from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig, load_yaml
from .errors import ConfigError, StacktuneError
from . import tracking

log = logging.getLogger("stacktune")


def load_data(spec, *, base_dir: Path | None):
    """The prepared dataset for `spec`, or a ConfigError with the loader's one-line reason."""
    from stacktune.datasets import load

    try:
        return load(spec, base_dir=base_dir)
    except (ValueError, OSError) as exc:  # DataError is a ValueError
        raise ConfigError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def build(cfg: TrainConfig, data, *, threads: int | None = None, device: str = "cpu"):
    """The model config and training settings that `cfg` describes for `data`."""
    from stacktune.models import LSTMConfig, TrainSettings

    model = LSTMConfig(
        input_size=data.input_size,
        units=list(cfg.model.units),
        output_size=data.output_size,
        task=data.task,
        dropout=cfg.model.dropout,
        residual=cfg.model.residual,
        forget_bias=cfg.model.forget_bias,
    )
    settings = TrainSettings(
        lr=cfg.train.lr,
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        weight_decay=cfg.train.weight_decay,
        optimizer=cfg.train.optimizer,
        grad_clip=cfg.train.grad_clip,
        seed=cfg.train.seed,
        threads=threads,
        device=device,
        precision=cfg.train.precision,
    )
    return model, settings


def flat_params(cfg: TrainConfig) -> dict[str, Any]:
    """The config as flat MLflow params with stable names (units_0, units_1, ...)."""
    ds = cfg.dataset
    params: dict[str, Any] = {
        "dataset": ds.name or Path(ds.csv).name,
        "window": ds.window,
        "horizon": ds.horizon,
        "depth": len(cfg.model.units),
    }
    params.update({f"units_{i}": width for i, width in enumerate(cfg.model.units)})
    params.update(cfg.model.model_dump(exclude={"units"}))
    params.update(cfg.train.model_dump())
    return params


def config_yaml(cfg: TrainConfig) -> str:
    """The config as `stacktune train` reads it, without unset optional sections."""
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False, default_flow_style=None)


def run_train(config_path: str, *, seed: int | None = None, tracking_uri: str | None = None) -> dict:
    """Trains the configuration in `config_path`, logs one MLflow run and returns the summary."""
    path = Path(config_path)
    cfg = load_yaml(TrainConfig, path)
    if seed is not None:
        cfg.train.seed = seed
    data = load_data(cfg.dataset, base_dir=path.resolve().parent)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_tracking(uri)

    from stacktune.models import evaluate, fit, save_model

    client = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(client, "stacktune-train")
    run = client.create_run(
        experiment_id,
        run_name=f"train-{path.stem}-s{cfg.train.seed}",
        tags={tracking.ROLE: "train", "mlflow.source.name": str(path)},
    )
    run_id = run.info.run_id
    model_cfg, settings = build(cfg, data)
    started = time.perf_counter()
    try:
        tracking.log_batch(client, run_id, params=tracking.as_params(flat_params(cfg)))
        result = fit(
            model_cfg,
            data,
            settings,
            on_epoch=lambda e: log.info("epoch %d  train_loss %.5f  val_loss %.5f", e.epoch, e.train_loss, e.val_loss),
        )
        seconds = time.perf_counter() - started
        test = evaluate(result.model, data.test, task=data.task)
        val = evaluate(result.model, data.val, task=data.task)
        summary = {
            "val_loss": result.best_val_loss,
            "test_loss": test["loss"],
            **({"val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"]} if data.task == "classification" else {}),
            "params": result.params,
            "seconds": round(seconds, 3),
            "epochs": len(result.epochs),
            "best_epoch": result.best_epoch,
            "state": result.state,
            "mlflow_run_id": run_id,
        }
        metrics = []
        for e in result.epochs:
            metrics += tracking.epoch_metrics(e.epoch, {"train_loss": e.train_loss, "val_loss": e.val_loss, "val_accuracy": e.val_accuracy})
        final = {k: v for k, v in summary.items() if k.endswith(("loss", "accuracy"))}
        metrics += tracking.epoch_metrics(len(result.epochs), {**{f"final_{k}": v for k, v in final.items()}, "n_params": result.params})
        tracking.log_batch(client, run_id, metrics=metrics, tags=tracking.as_tags({tracking.STATE: result.state}))
        with tempfile.TemporaryDirectory() as tmp:
            save_model(result.model, Path(tmp) / "model.pt")
            (Path(tmp) / "config.yaml").write_text(config_yaml(cfg))
            client.log_artifacts(run_id, tmp)
    except BaseException:
        client.set_terminated(run_id, status="KILLED" if sys.exc_info()[0] is KeyboardInterrupt else "FAILED")
        raise
    if result.state == "diverged":
        client.set_terminated(run_id, status="FAILED")
        raise StacktuneError(f"training diverged: {result.reason}")
    client.set_terminated(run_id, status="FINISHED")
    return summary


def print_summary(summary: dict, *, as_json: bool) -> None:
    """The result on stdout: one JSON object, or a few readable lines."""
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{key:>14}  {shown}")
