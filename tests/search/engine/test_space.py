"""The define-by-run space, the matched-size option and the config round trip."""

from __future__ import annotations

import optuna
import pytest

from stacktune.models import LSTMConfig, count_parameters
from stacktune.search.engine.space import TrialSpace
from stacktune.search.spec.convert import match_widths, to_train_config
from stacktune.search.spec.schema import SearchSpec


def _spec(units) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": "s",
            "dataset": {"name": "sine", "window": 8},
            "depths": [1, 2, 3, 6],
            "trials_per_depth": 2,
            "space": {"units": units},
        }
    )


def test_matched_size_gives_every_depth_about_the_same_number_of_weights():
    spec = match_widths(_spec({"params": 60_000}), input_size=1, output_size=1, task="regression")
    widths = spec.space.units.widths
    assert widths[1] > widths[2] > widths[3] > widths[6]
    for depth, width in widths.items():
        size = count_parameters(LSTMConfig(input_size=1, units=[width] * depth, output_size=1))
        assert abs(size - 60_000) / 60_000 < 0.05, (depth, width, size)
    # The width is fixed per depth, so only lr (and the rest) is searched.
    trial = optuna.create_study().ask()
    params = TrialSpace.of(spec).sample(trial, 3)
    assert [params[f"units_{i}"] for i in range(3)] == [widths[3]] * 3
    assert "units_0" not in trial.params
    # It survives the trip to a Ray worker as JSON.
    assert SearchSpec.model_validate_json(spec.model_dump_json()).space.units.widths == widths


def test_integer_range_with_a_step():
    spec = _spec({"low": 16, "high": 64, "step": 16})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        params = TrialSpace.of(spec).sample(study.ask(), 2)
        assert params["units_0"] in (16, 32, 48, 64) and params["units_1"] in (16, 32, 48, 64)


def test_a_sampled_point_becomes_the_train_config_an_export_writes():
    spec = _spec([8, 16])
    params = TrialSpace.of(spec).sample(
        optuna.trial.FixedTrial({"units_0": 16, "units_1": 8, "lr": 0.003, "dropout": 0.1}), 2
    )
    cfg = to_train_config(spec, params, depth=2)
    assert (
        cfg.model.units == [16, 8] and cfg.train.lr == pytest.approx(0.003) and cfg.model.dropout == 0.0
    )  # dropout is fixed unless the space searches it
    assert cfg.train.epochs == spec.train.epochs and cfg.train.seed == spec.seed


@pytest.mark.parametrize("units", [{"choices": [8, 16, 32], "shared": True}, {"low": 8, "high": 64, "shared": True}])
def test_shared_units_give_every_depth_a_space_of_the_same_dimension(units):
    spec = _spec(units)
    dimensions = {}
    for depth in spec.depths:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=depth))
        for _ in range(5):
            trial = study.ask()
            params = TrialSpace.of(spec).sample(trial, depth)
            widths = [params[f"units_{i}"] for i in range(depth)]
            assert len(set(widths)) == 1  # one width for the whole stack
            study.tell(trial, 1.0)
        dimensions[depth] = len(study.trials[0].params)
        # The exported config and its retraining carry the same width on every layer.
        config = to_train_config(
            spec, TrialSpace.of(spec).sample(optuna.trial.FixedTrial(study.trials[0].params), depth), depth=depth
        )
        assert len(set(config.model.units)) == 1 and len(config.model.units) == depth
    # units and lr at every depth (dropout is fixed in this space).
    assert len(set(dimensions.values())) == 1, dimensions


def test_per_layer_units_grow_the_space_with_depth():
    spec = _spec([8, 16, 32])
    dims = {}
    for depth in spec.depths:
        trial = optuna.create_study().ask()
        TrialSpace.of(spec).sample(trial, depth)
        dims[depth] = len(trial.params)
    assert dims[6] - dims[1] == 5  # a width per layer: five more dimensions at depth 6 than at depth 1
