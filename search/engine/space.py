"""The define-by-run space of one depth: what each depth's Optuna study samples."""

from __future__ import annotations

from typing import Any

from ..spec.schema import FloatRange, IntRange, MatchedUnits, SearchSpec, UnitChoices


def _suggest_float(trial, name: str, value: FloatRange | float) -> float:
    if isinstance(value, FloatRange):
        return trial.suggest_float(name, value.low, value.high, log=value.log)
    return float(value)


def _suggest_units(trial, name: str, units: list[int] | IntRange | UnitChoices) -> int:
    if isinstance(units, IntRange):
        return trial.suggest_int(name, units.low, units.high, step=units.step, log=units.log)
    return trial.suggest_categorical(name, list(units.choices if isinstance(units, UnitChoices) else units))


def suggest(trial, *, depth: int, spec: SearchSpec) -> dict[str, Any]:
    """Samples one point for a `depth`-layer stack: units_0..units_{depth-1}, lr and the rest.

    With `units: {shared: true}` the study samples one `units` and every layer gets it.

    Only calls `trial.suggest_*` and returns plain values, so Optuna sees the same
    parameters in every trial of a depth's study.
    """
    space = spec.space
    params: dict[str, Any] = {}
    units = space.units
    if isinstance(units, MatchedUnits):
        widths = [units.widths[depth]] * depth
    elif getattr(units, "shared", False):
        # One width for the whole stack: every depth's study searches the same number of dimensions.
        widths = [_suggest_units(trial, "units", units)] * depth
    else:
        widths = [_suggest_units(trial, f"units_{layer}", units) for layer in range(depth)]
    params.update({f"units_{layer}": width for layer, width in enumerate(widths)})
    params["lr"] = _suggest_float(trial, "lr", space.lr)
    # Dropout acts between layers, so a single layer has nothing to tune.
    params["dropout"] = _suggest_float(trial, "dropout", space.dropout) if depth > 1 else 0.0
    params["weight_decay"] = _suggest_float(trial, "weight_decay", space.weight_decay)
    if isinstance(space.batch_size, list):
        params["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_size))
    else:
        params["batch_size"] = space.batch_size or spec.train.batch_size
    return params
