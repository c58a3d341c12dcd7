"""The define-by-run space of one depth: what each depth's Optuna study samples."""

from __future__ import annotations

from typing import Any

from ..spec.schema import FloatRange, IntRange, MatchedUnits, SearchSpec


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
