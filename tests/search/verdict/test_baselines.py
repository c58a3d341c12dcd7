"""Naive baselines on hand-made series and labels whose losses are known, scored in the trainer's own units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from stacktune.datasets import load
from stacktune.datasets.types import Prepared, Split
from stacktune.models.train import evaluate
from stacktune.search.verdict.baselines import (
    MIN_PROBABILITY,
    best_baseline,
    majority_class,
    naive_baselines,
    persistence,
    seasonal_naive,
    skill,
    target_input_indices,
)


def _windows(values: np.ndarray, window: int, horizon: int, targets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """x (samples, window, channels) and step-major y, written out with loops (independent of the library's)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    xs, ys = [], []
    for start in range(len(values) - window - horizon + 1):
        xs.append(values[start : start + window])
        ys.append([values[start + window + h, j] for h in range(horizon) for j in targets])
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.float32)


def _series(values, *, window: int, horizon: int, columns=("v",), targets=("v",), target_cols=None, **meta) -> Prepared:
    """A Prepared forecasting set whose train, val and test splits are all the windows of `values`."""
    target_cols = [list(columns).index(t) for t in targets] if target_cols is None else target_cols
    x, y = _windows(values, window, horizon, target_cols)
    split = Split(x, y)
    return Prepared(
        name="hand",
        task="regression",
        input_size=x.shape[2],
        output_size=y.shape[1],
        train=split,
        val=split,
        test=split,
        meta={"columns": list(columns), "targets": list(targets), "window": window, "horizon": horizon, **meta},
    )


def _labels(train: list[int], test: list[int], classes: int, labels=None) -> Prepared:
    def split(y):
        return Split(np.zeros((len(y), 4, 1), np.float32), np.asarray(y, np.int64))

    meta = {"columns": ["x"]} if labels is None else {"columns": ["x"], "labels": labels}
    return Prepared("labels", "classification", 1, classes, split(train), split(train), split(test), meta)


class _Constant(torch.nn.Module):
    """Stands in for a StackedLSTM: returns given outputs, one row per sample in order, or one row for all."""

    def __init__(self, outputs: np.ndarray):
        super().__init__()
        self.outputs = torch.as_tensor(np.asarray(outputs, dtype=np.float32))
        self.seen = 0

    def forward(self, x, lengths=None):
        if self.outputs.shape[0] == 1:
            return self.outputs.expand(x.shape[0], -1)
        out = self.outputs[self.seen : self.seen + x.shape[0]]
        self.seen += x.shape[0]
        return out


# ----------------------------------------------------------------------------- persistence


def test_persistence_on_a_straight_line_is_the_hand_computed_mse():
    # x = s[i:i+3], y = s[i+3], s[i+4]; the last value s[i+2] misses by 1 and 2: MSE (1 + 4) / 2.
    data = _series(np.arange(20.0), window=3, horizon=2)

    result = persistence(data)

    assert result["kind"] == "persistence"
    assert result["loss"] == pytest.approx(2.5)
    assert result["samples"] == len(data.test) == 16
    assert [b["kind"] for b in naive_baselines(data)] == ["persistence"]


def test_persistence_on_a_random_series_matches_a_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(60, 2))
    data = _series(values, window=5, horizon=3, columns=("a", "b"), targets=("b", "a"))

    errors = []
    for start in range(60 - 5 - 3 + 1):
        for h in range(3):
            for col in (1, 0):
                errors.append((values[start + 5 + h, col] - values[start + 4, col]) ** 2)

    assert persistence(data)["loss"] == pytest.approx(np.mean(errors), rel=1e-6)


def test_persistence_is_scored_exactly_as_the_trainer_scores_a_model():
    rng = np.random.default_rng(1)
    data = _series(rng.normal(size=(80, 2)), window=6, horizon=4, columns=("a", "b"), targets=("b",))
    prediction = np.repeat(data.test.x[:, -1, 1:2], 4, axis=1)  # the last b, for each of the 4 steps

    model_loss = evaluate(_Constant(prediction), data.test, task="regression")["loss"]

    assert persistence(data)["loss"] == pytest.approx(model_loss, rel=1e-6)


def test_persistence_maps_the_input_scaling_into_the_target_scaling():
    rng = np.random.default_rng(2)
    raw = rng.normal(5.0, 3.0, size=70)
    window, horizon = 4, 2
    x_mean, x_std, y_mean, y_std = 4.0, 2.0, 6.0, 0.5  # deliberately different statistics for the same column
    x, _ = _windows((raw - x_mean) / x_std, window, horizon, [0])
    _, y = _windows((raw - y_mean) / y_std, window, horizon, [0])
    split = Split(x, y)
    data = Prepared(
        "scaled", "regression", 1, horizon, split, split, split,
        meta={
            "columns": ["v"], "targets": ["v"], "window": window, "horizon": horizon,
            "x_mean": [x_mean], "x_std": [x_std], "y_mean": [y_mean] * horizon, "y_std": [y_std] * horizon,
        },
    )  # fmt: skip
    last = np.array([raw[s + window - 1] for s in range(len(x))])
    future = np.array([[raw[s + window + h] for h in range(horizon)] for s in range(len(x))])
    expected = np.mean(((future - last[:, None]) / y_std) ** 2)

    assert persistence(data)["loss"] == pytest.approx(expected, rel=1e-5)


def test_persistence_uses_target_in_inputs_before_the_names():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 2))
    # the target column is named "t" but is not among the inputs by name; meta says it is input channel 1
    data = _series(values, window=4, horizon=1, columns=("a", "b"), targets=("t",), target_cols=[1])
    assert persistence(data) is None
    assert naive_baselines(data) == []

    data.meta["target_in_inputs"] = [1]
    expected = np.mean([(values[s + 4, 1] - values[s + 3, 1]) ** 2 for s in range(40 - 4)])
    assert persistence(data)["loss"] == pytest.approx(expected, rel=1e-6)


def test_persistence_is_left_out_when_a_target_is_not_an_input():
    data = _series(np.arange(30.0), window=3, horizon=1, targets=("v",))
    data.meta["target_in_inputs"] = [None]

    assert target_input_indices(data.meta) == [None]
    assert naive_baselines(data) == []


def test_target_input_indices_falls_back_to_the_column_names():
    assert target_input_indices({"columns": ["a", "b", "c"], "targets": ["c", "x", "a"]}) == [2, None, 0]
    assert target_input_indices({"columns": ["a"], "targets": ["a"], "target_in_inputs": [0]}) == [0]


def test_a_regression_set_that_is_not_a_windowed_series_has_no_baselines():
    split = Split(np.zeros((10, 5, 2), np.float32), np.zeros((10, 1), np.float32))
    data = Prepared("adding", "regression", 2, 1, split, split, split, meta={"columns": ["v", "m"], "targets": []})

    assert naive_baselines(data) == []


# ----------------------------------------------------------------------------- seasonal naive


def test_seasonal_naive_is_exact_on_a_periodic_series():
    pattern = [1.0, 5.0, -2.0, 3.0]
    values = np.array([pattern[t % 4] for t in range(60)])
    # horizon 7 > season 4: steps 5..7 wrap back to the window's last season
    data = _series(values, window=6, horizon=7, season=4)

    found = {b["kind"]: b for b in naive_baselines(data)}

    assert found["seasonal_naive"]["loss"] == 0.0
    assert found["seasonal_naive"]["season"] == 4
    assert found["persistence"]["loss"] > 1.0
    assert best_baseline(found.values())["kind"] == "seasonal_naive"


def test_seasonal_naive_indexing_step_by_step():
    # every value is unique, so each step's read position shows in the error
    values = np.arange(40.0) ** 2
    window, horizon, season = 5, 5, 3
    data = _series(values, window=window, horizon=horizon, season=season)

    errors = []
    for s in range(40 - window - horizon + 1):
        for h in range(1, horizon + 1):
            read = s + window - season + ((h - 1) % season)  # x[:, window - season + ((h-1) % season)]
            errors.append((values[s + window + h - 1] - values[read]) ** 2)

    assert seasonal_naive(data, season=season)["loss"] == pytest.approx(np.mean(errors), rel=1e-6)


def test_a_wrong_season_is_not_exact_and_season_one_is_persistence():
    pattern = [1.0, 5.0, -2.0, 3.0]
    data = _series(np.array([pattern[t % 4] for t in range(60)]), window=6, horizon=3)

    assert seasonal_naive(data, season=3)["loss"] > 0.1
    assert seasonal_naive(data, season=1)["loss"] == pytest.approx(persistence(data)["loss"])


def test_seasonal_naive_is_unavailable_when_the_season_exceeds_the_window():
    data = _series(np.sin(np.arange(50.0)), window=6, horizon=2, season=7)

    assert seasonal_naive(data, season=7) is None
    assert seasonal_naive(data, season=6) is not None  # exactly the window still fits
    assert [b["kind"] for b in naive_baselines(data)] == ["persistence"]


# ----------------------------------------------------------------------------- majority class


def test_majority_class_on_a_hand_made_label_set():
    data = _labels(train=[0, 0, 0, 1, 1, 2], test=[0, 1, 1, 2], classes=3, labels=["a", "b", "c"])

    result = majority_class(data)

    freq = [3 / 6, 2 / 6, 1 / 6]
    expected = -(math.log(freq[0]) + 2 * math.log(freq[1]) + math.log(freq[2])) / 4
    assert result["kind"] == "majority_class"
    assert result["label"] == 0
    assert result["accuracy"] == pytest.approx(0.25)
    assert result["loss"] == pytest.approx(expected)
    assert "a" in result["description"]
    assert naive_baselines(data) == [result]


def test_majority_class_loss_is_the_trainers_cross_entropy_of_the_frequency_logits():
    data = _labels(train=[2, 2, 1, 0, 2, 1, 2], test=[2, 0, 1, 1, 2, 3], classes=4)
    counts = np.bincount(data.train.y, minlength=4)
    p = np.clip(counts / counts.sum(), MIN_PROBABILITY, None)
    model = _Constant(np.log(p)[None, :])

    scored = evaluate(model, data.test, task="classification")
    result = majority_class(data)

    assert result["loss"] == pytest.approx(scored["loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(scored["accuracy"])
    # class 3 never appears in training: clipped, not infinite
    assert math.isfinite(result["loss"]) and result["loss"] > 2.0


# ----------------------------------------------------------------------------- skill and best


def test_skill_sign():
    assert skill(0.5, 1.0) == pytest.approx(0.5)  # better than the baseline
    assert skill(1.0, 1.0) == 0.0
    assert skill(2.0, 1.0) == pytest.approx(-1.0)  # worse
    assert skill(0.0, 1.0) == 1.0


@pytest.mark.parametrize("baseline", [0.0, -1.0, math.inf, math.nan, None])
def test_skill_is_none_without_a_usable_baseline(baseline):
    assert skill(0.5, baseline) is None


def test_skill_is_none_for_a_diverged_loss():
    assert skill(math.inf, 1.0) is None


def test_best_baseline():
    found = [{"kind": "persistence", "loss": 0.4}, {"kind": "seasonal_naive", "loss": 0.2}, {"kind": "x", "loss": None}]

    assert best_baseline(found)["kind"] == "seasonal_naive"
    assert best_baseline([]) is None
    assert best_baseline([{"kind": "x", "loss": math.nan}]) is None


def test_every_baseline_is_plain_json():
    pattern = [1.0, 5.0, -2.0, 3.0]
    found = naive_baselines(_series(np.array([pattern[t % 4] for t in range(60)]), window=6, horizon=7, season=4))
    found += naive_baselines(_labels(train=[0, 1, 1], test=[1, 0], classes=2))

    assert len(found) == 3
    for baseline in found:
        json.dumps(baseline, allow_nan=False)
        assert isinstance(baseline["loss"], float) and isinstance(baseline["description"], str)


# ----------------------------------------------------------------------------- a real dataset


def test_persistence_on_the_builtin_sine_beats_the_target_variance():
    data = load({"name": "sine", "window": 8})

    found = {b["kind"]: b for b in naive_baselines(data)}

    assert set(found) == {"persistence"}  # no season in meta: no seasonal naive
    loss = found["persistence"]["loss"]
    assert math.isfinite(loss)
    assert loss < 1.0
    assert loss < float(np.var(data.test.y))
