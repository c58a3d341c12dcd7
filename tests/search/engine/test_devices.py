"""GPU settings that can be checked without a GPU: device choice, Tensor-Core-friendly widths, fractional shares."""

from __future__ import annotations

import optuna
import pytest

from stacktune.search.engine.space import TrialSpace
from stacktune.search.engine.trainable import pick_device
from stacktune.search.spec.convert import match_widths
from stacktune.search.spec.schema import SearchSpec


def _spec(units, gpus: float, **extra) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": "g",
            "dataset": {"name": "sine", "window": 8},
            "depths": [1, 2, 6],
            "trials_per_depth": 2,
            "space": {"units": units},
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": gpus},
            **extra,
        }
    )


def test_a_trial_with_a_gpu_share_trains_on_cuda_and_one_without_on_cpu():
    assert pick_device(0.0, cuda_available=True) == "cpu"
    assert pick_device(0.25, cuda_available=True) == "cuda"
    assert pick_device(1, cuda_available=True) == "cuda"
    with pytest.raises(RuntimeError, match="gpus_per_trial is 0.25 but this worker has no CUDA device"):
        pick_device(0.25, cuda_available=False)


def test_fractional_gpus_per_trial_is_accepted_and_kept():
    assert _spec([32], 0.25).resources.gpus_per_trial == 0.25


def test_on_a_gpu_a_units_range_without_a_step_samples_multiples_of_8():
    spec = _spec({"low": 20, "high": 200}, 0.5)
    assert (spec.space.units.low, spec.space.units.step) == (24, 8)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    widths = [TrialSpace.of(spec).sample(study.ask(), 2)[f"units_{i}"] for _ in range(40) for i in range(2)]
    assert all(w % 8 == 0 and 24 <= w <= 200 for w in widths)


def test_a_step_the_user_gave_and_cpu_searches_are_left_alone():
    assert _spec({"low": 20, "high": 200, "step": 5}, 0.5).space.units.step == 5
    assert _spec({"low": 20, "high": 200}, 0.0).space.units.low == 20
    assert _spec({"low": 20, "high": 200}, 0.0).space.units.step == 1


def test_matched_widths_on_a_gpu_are_multiples_of_8():
    spec = match_widths(_spec({"params": 50_000}, 1.0), input_size=1, output_size=1, task="regression")
    assert all(w % 8 == 0 for w in spec.space.units.widths.values())


def test_bf16_precision_reaches_the_trial_config():
    from stacktune.search.spec.convert import to_train_config

    spec = _spec([32], 1.0, train={"precision": "bf16"})
    params = TrialSpace.of(spec).sample(optuna.create_study().ask(), 1)
    assert to_train_config(spec, params, depth=1).train.precision == "bf16"
