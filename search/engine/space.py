"""The define-by-run space of one depth: what each depth's Optuna study samples, and the train config of a point.

`TrialSpace.of(spec)` takes from the spec, once, what every trial shares; the searcher samples with it, and the
summary and the evaluation turn a finished trial's parameters back into its config with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.trial import FixedTrial

from ..spec.convert import shared_settings, train_config
from ..spec.schema import FloatRange, IntRange, MatchedUnits, SearchSpec, SpaceSection, TrainConfig, UnitChoices


@dataclass(frozen=True)
class TrialSpace:
    """What a search samples at each depth (`space`, with the spec's batch size where the space has none) and the
    settings every trial's train config shares (`shared`: dataset, epochs, optimizer, seed and the rest)."""

    space: SpaceSection
    batch_size: int
    shared: dict[str, Any]

    @classmethod
    def of(cls, spec: SearchSpec) -> TrialSpace:
        return cls(space=spec.space, batch_size=spec.train.batch_size, shared=shared_settings(spec))

    def sample(self, trial, depth: int) -> dict[str, Any]:
        """One point of a `depth`-layer stack, drawn from an Optuna trial (see `suggest`)."""
        return suggest(trial, depth=depth, space=self.space, batch_size=self.batch_size)

    def config(self, params: dict[str, Any], depth: int) -> TrainConfig:
        """The `stacktune train` config of a sampled point."""
        return train_config(self.shared, params, depth=depth)

    def config_of(self, params: dict[str, Any], depth: int) -> TrainConfig:
        """The train config of a finished trial, from the parameters its study recorded (a shared width, or a
        matched one that is not a parameter, filled in as sampling fills it)."""
        return self.config(self.sample(FixedTrial(params), depth), depth)


def _suggest_float(trial, name: str, value: FloatRange | float) -> float:
    if isinstance(value, FloatRange):
        return trial.suggest_float(name, value.low, value.high, log=value.log)
    return float(value)


def _suggest_units(trial, name: str, units: list[int] | IntRange | UnitChoices) -> int:
    if isinstance(units, IntRange):
        return trial.suggest_int(name, units.low, units.high, step=units.step, log=units.log)
    return trial.suggest_categorical(name, list(units.choices if isinstance(units, UnitChoices) else units))


def suggest(trial, *, depth: int, space: SpaceSection, batch_size: int) -> dict[str, Any]:
    """Samples one point for a `depth`-layer stack: units_0..units_{depth-1}, lr and the rest.

    With `units: {shared: true}` the study samples one `units` and every layer gets it.

    Only calls `trial.suggest_*` and returns plain values, so Optuna sees the same
    parameters in every trial of a depth's study.
    """
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
        params["batch_size"] = space.batch_size or batch_size
    return params
