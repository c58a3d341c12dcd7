"""From a spec to what runs: a sampled point or the fixed setting as a train config, the trainer's settings,
flat MLflow params, the exported YAML, the widths of `units: {params: N}`, and the seeds a search uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .schema import GPU_UNITS_MULTIPLE, MatchedUnits, SearchSpec, TrainConfig

# Seeds derived from the spec's seed: a depth's sampler gets spec.seed * SEED_OFFSET + depth (plus REPLICATE_STRIDE
# for each replicate search after the first), and evaluation retrainings start at (spec.seed + 1) * SEED_OFFSET, so
# no trial's lucky start is reused in evaluation.
SEED_OFFSET = 1000
REPLICATE_STRIDE = 40  # above MAX_DEPTH, and 40 * (MAX_REPLICATES - 1) + MAX_DEPTH stays below SEED_OFFSET


def sampler_seed(seed: int, depth: int, replicate: int = 1) -> int:
    """The seed of the Optuna sampler of one depth's replicate search (1 is the first) in a search of seed `seed`,
    so a search is repeatable and its replicates are independent."""
    return seed * SEED_OFFSET + depth + REPLICATE_STRIDE * (replicate - 1)


def evaluation_seeds(spec: SearchSpec, count: int | None = None, *, start: int = 0) -> list[int]:
    """The seeds every evaluated configuration is retrained with: the spec's count (or `count`), from the `start`-th."""
    n = spec.evaluation.seeds if count is None else count
    if not isinstance(n, int):
        raise ValueError("evaluation.seeds is 'auto': give the count of this round")
    return [spec.seed * SEED_OFFSET + SEED_OFFSET + i for i in range(start, start + n)]


def to_train_config(spec: SearchSpec, params: dict[str, Any], *, depth: int) -> TrainConfig:
    """The `stacktune train` config of one sampled point: what a trial trains and an export writes."""
    return train_config(shared_settings(spec), params, depth=depth)


def shared_settings(spec: SearchSpec) -> dict[str, Any]:
    """What every trial's train config of a search shares: the dataset and the training settings not searched."""
    train = spec.train
    return {
        "dataset": spec.dataset.model_dump(exclude_none=True),
        "train": {
            "epochs": train.epochs,
            "optimizer": train.optimizer,
            "grad_clip": train.grad_clip,
            "precision": train.precision,
            "patience": train.patience,
            "seed": spec.seed,
        },
    }


def train_config(shared: dict[str, Any], params: dict[str, Any], *, depth: int) -> TrainConfig:
    """The train config of one sampled point, from the settings every trial of a search shares (`shared`, see
    engine.space.TrialSpace) and the point's own parameters."""
    return TrainConfig.model_validate(
        {
            "dataset": shared["dataset"],
            "model": {"units": [int(params[f"units_{i}"]) for i in range(depth)], "dropout": params["dropout"]},
            "train": {
                **shared["train"],
                "lr": params["lr"],
                "batch_size": int(params["batch_size"]),
                "weight_decay": params["weight_decay"],
            },
        }
    )


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
                "patience": spec.train.patience,
                "seed": spec.seed,
            },
        }
    )


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
        patience=cfg.train.patience,
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


def match_widths(spec: SearchSpec, *, input_size: int, output_size: int, task: str) -> SearchSpec:
    """Fills in the width of each depth for `units: {params: N}`: the equal width whose stack is nearest N weights."""
    if not isinstance(spec.space.units, MatchedUnits):
        return spec
    from stacktune.models import LSTMConfig, count_parameters

    def size(depth: int, width: int) -> int:
        return count_parameters(
            LSTMConfig(input_size=input_size, units=[width] * depth, output_size=output_size, task=task)
        )

    target = spec.space.units.params
    # On a GPU, multiples of 8 (Tensor Core tiles) only.
    step = GPU_UNITS_MULTIPLE if spec.resources.gpus_per_trial > 0 else 1
    widths = {d: min(range(step, 4097, step), key=lambda w: abs(size(d, w) - target)) for d in spec.depths}
    return spec.model_copy(
        update={
            "space": spec.space.model_copy(update={"units": spec.space.units.model_copy(update={"widths": widths})})
        }
    )
