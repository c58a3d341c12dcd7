"""What runs on a Ray worker: one trial (the trainer on one sampled config, reporting each epoch) and one evaluation
retraining. Kept free of MLflow, Optuna and SciPy imports, which every new worker would otherwise pay for."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..contracts import TrialResult
from ..errors import ConfigError
from ..spec.convert import build, config_yaml, to_train_config
from ..spec.schema import SearchSpec, TrainConfig

STATE_FILE = "state.pt"


def _saved_state() -> dict | None:
    """The training state of this trial's last epoch checkpoint, when Ray Tune restarted it."""
    import torch
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        path = Path(folder) / STATE_FILE
        # Tensors, numbers and plain containers only: a checkpoint on shared storage can never run code here.
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def pick_device(gpus_per_trial: float, *, cuda_available: bool) -> str:
    """The trial's device: "cuda" when it was given a GPU or a share of one (Ray sets which through
    CUDA_VISIBLE_DEVICES), else "cpu"."""
    if gpus_per_trial <= 0:
        return "cpu"
    if not cuda_available:
        raise RuntimeError(
            f"resources.gpus_per_trial is {gpus_per_trial:g} but this worker has no CUDA device PyTorch can use"
        )
    return "cuda"


def require_precision(precision: str, device: str = "cpu") -> None:
    """Raises ConfigError (one line) when `precision` cannot train on `device` of this machine: bf16 on a CPU
    without bfloat16 support would otherwise fail inside oneDNN once training starts."""
    if precision == "fp32":
        return
    from stacktune.models import check_precision

    try:
        check_precision(precision, device)
    except ValueError as exc:
        raise ConfigError(f"train.{exc}") from None


def check_search_precision(spec: SearchSpec) -> None:
    """Before any trial: refuses bf16 trials on CPU (no GPU per trial) when this machine's CPU cannot run them.
    Trials on GPUs are checked by each trial on its own device: the driver may have none."""
    if spec.resources.gpus_per_trial <= 0:
        require_precision(spec.train.precision, "cpu")


def run_trial(config: dict[str, Any], *, data, spec_json: str) -> None:
    """Trains the trial's config; reports train/val loss per epoch and a final summary.

    The test split travels with `data` but is never evaluated here: a search sees
    validation loss only.
    """
    import ray
    import torch

    from stacktune.models import fit

    spec = SearchSpec.model_validate_json(spec_json)
    depth = config["depth"]
    cfg = to_train_config(spec, config["params"], depth=depth)
    threads = max(1, int(spec.resources.cpus_per_trial))
    device = pick_device(spec.resources.gpus_per_trial, cuda_available=torch.cuda.is_available())
    model_cfg, settings = build(cfg, data, threads=threads, device=device)
    node_id = ray.get_runtime_context().get_node_id()
    resume = _saved_state()
    on_epoch = _epoch_reporter(node_id=node_id, resume=resume)
    result = fit(
        model_cfg, data, settings, on_epoch=on_epoch, state_every=spec.train.checkpoint_every, resume_from=resume
    )
    _report_final(result, cfg, node_id=node_id)


def _epoch_reporter(*, node_id: str, resume: dict | None) -> Callable[[Any], None]:
    """The `on_epoch` callback: reports each epoch's losses (with a checkpoint when it carries state) to Ray Tune,
    keeping the best validation loss and the training seconds so far (continued from `resume`)."""
    import torch
    from ray import tune

    best = resume["best_val_loss"] if resume else math.inf
    seconds = sum(e["seconds"] for e in resume["history"]) if resume else 0.0

    def on_epoch(e) -> None:
        nonlocal best, seconds
        if math.isfinite(e.val_loss):
            best = min(best, e.val_loss)
        seconds += e.seconds
        metrics = TrialResult(
            epoch=e.epoch,
            train_loss=e.train_loss,
            val_loss=e.val_loss,
            val_accuracy=e.val_accuracy,
            best_val_loss=best,
            train_seconds=seconds,
            node_id=node_id,
        ).to_report()
        if e.state is None:
            tune.report(metrics)
            return
        # A trial restarted on another worker continues from here (see _saved_state).
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(e.state, Path(tmp) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    return on_epoch


def _report_final(result, cfg, *, node_id: str) -> None:
    """Reports the trial's final summary; a trial that did not diverge also checkpoints its model and config."""
    from ray import tune

    from stacktune.models import save_model

    final = TrialResult(
        final=True,
        epoch=len(result.epochs),
        best_val_loss=result.best_val_loss,
        best_epoch=result.best_epoch,
        params=result.params,
        state="failed" if result.state == "diverged" else "completed",
        reason=result.reason or "",
        train_seconds=sum(e.seconds for e in result.epochs),
        node_id=node_id,
    ).to_report()
    if result.state == "diverged":
        tune.report(final)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_model(result.model, Path(tmp) / "model.pt")
        (Path(tmp) / "config.yaml").write_text(config_yaml(cfg))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


def run_eval(config: dict[str, Any], *, data, threads: int, gpus: float = 0.0) -> None:
    """Retrains one configuration with each of the job's seeds on one data origin, in this one process, and reports
    each seed's validation and test scores (one result per seed, with its `seed`).

    Where `models.batched_pays` expects it to be faster, the seeds train together as one batched model and report
    when all are trained; otherwise one after another, each reporting as soon as it is trained. `data` is the
    prepared set, or the evaluation's origins (datasets.origins) in order: a job with an `origin` (numbered from 1)
    trains and scores on that one."""
    import torch
    from ray import tune

    from stacktune.models import batched_pays, evaluate, fit, fit_seeds

    job = config["job"]
    if isinstance(data, (list, tuple)):
        data = data[int(job.get("origin") or 1) - 1]
    device = pick_device(gpus, cuda_available=torch.cuda.is_available())
    seeds = list(job["seeds"])
    model_cfg, settings = build(TrainConfig.model_validate(job["config"]), data, threads=threads, device=device)

    def report(seed: int, result, together: int = 1) -> None:
        metrics = {
            "seed": seed,
            "together": together,
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

    if batched_pays(model_cfg, settings, len(seeds), device):
        for seed, result in zip(seeds, fit_seeds(model_cfg, data, settings, seeds, batched=True), strict=True):
            report(seed, result, together=len(seeds))
        return
    for seed in seeds:
        report(seed, fit(model_cfg, data, dataclasses.replace(settings, seed=seed)))
