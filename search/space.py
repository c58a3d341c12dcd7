"""The define-by-run space of one depth, and how a sampled point becomes a train config."""
from __future__ import annotations

from typing import Any

from .config import GPU_UNITS_MULTIPLE, FloatRange, IntRange, MatchedUnits, SearchSpec, TrainConfig


def _suggest_float(trial, name: str, value: FloatRange | float) -> float:
    if isinstance(value, FloatRange):
        return trial.suggest_float(name, value.low, value.high, log=value.log)
    return float(value)


def suggest(trial, *, depth: int, spec: SearchSpec) -> dict[str, Any]:
    """Samples one point for a `depth`-layer stack: units_0..units_{depth-1}, lr and the rest.

    Only calls `trial.suggest_*` and returns plain values, so Optuna sees the same
    parameters in every trial of a depth's study.
    """
    space = spec.space
    params: dict[str, Any] = {}
    for layer in range(depth):
        name = f"units_{layer}"
        if isinstance(space.units, MatchedUnits):
            params[name] = space.units.widths[depth]
        elif isinstance(space.units, IntRange):
            r = space.units
            params[name] = trial.suggest_int(name, r.low, r.high, step=r.step, log=r.log)
        else:
            params[name] = trial.suggest_categorical(name, list(space.units))
    params["lr"] = _suggest_float(trial, "lr", space.lr)
    # Dropout acts between layers, so a single layer has nothing to tune.
    params["dropout"] = _suggest_float(trial, "dropout", space.dropout) if depth > 1 else 0.0
    params["weight_decay"] = _suggest_float(trial, "weight_decay", space.weight_decay)
    if isinstance(space.batch_size, list):
        params["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_size))
    else:
        params["batch_size"] = space.batch_size or spec.train.batch_size
    return params


def to_train_config(spec: SearchSpec, params: dict[str, Any], *, depth: int) -> TrainConfig:
    """The `stacktune train` config of one sampled point: what a trial trains and an export writes."""
    return TrainConfig.model_validate(
        {
            "dataset": spec.dataset.model_dump(exclude_none=True),
            "model": {"units": [int(params[f"units_{i}"]) for i in range(depth)], "dropout": params["dropout"]},
            "train": {
                "lr": params["lr"],
                "epochs": spec.train.epochs,
                "batch_size": int(params["batch_size"]),
                "weight_decay": params["weight_decay"],
                "optimizer": spec.train.optimizer,
                "grad_clip": spec.train.grad_clip,
                "precision": spec.train.precision,
                "seed": spec.seed,
            },
        }
    )


def match_widths(spec: SearchSpec, *, input_size: int, output_size: int, task: str) -> SearchSpec:
    """Fills in the width of each depth for `units: {params: N}`: the equal width whose stack is nearest N weights."""
    if not isinstance(spec.space.units, MatchedUnits):
        return spec
    from stacktune.models import LSTMConfig, count_parameters

    def size(depth: int, width: int) -> int:
        return count_parameters(LSTMConfig(input_size=input_size, units=[width] * depth, output_size=output_size, task=task))

    target = spec.space.units.params
    # On a GPU, multiples of 8 (Tensor Core tiles) only.
    step = GPU_UNITS_MULTIPLE if spec.resources.gpus_per_trial > 0 else 1
    widths = {d: min(range(step, 4097, step), key=lambda w: abs(size(d, w) - target)) for d in spec.depths}
    return spec.model_copy(update={"space": spec.space.model_copy(update={"units": spec.space.units.model_copy(update={"widths": widths})})})
