"""The sanity checks beside the verdict, wired onto a comparison: baselines, skill, the headline, warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stacktune.datasets.types import Prepared, Split
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.verdict import checks
from stacktune.search.verdict.comparison import Comparison, DepthEntry


def _series_data(rows: int = 120, window: int = 6) -> Prepared:
    """A standardised sine as a windowed forecasting set with the target as its only input."""
    t = np.arange(rows, dtype=np.float64)
    y = np.sin(t / 3.0)

    def split(lo: int, hi: int) -> Split:
        x = np.stack([y[i : i + window] for i in range(lo, hi - window)])[:, :, None].astype(np.float32)
        target = y[lo + window : hi][:, None].astype(np.float32)
        return Split(x, target)

    meta = {"columns": ["v"], "targets": ["v"], "window": window, "horizon": 1, "target_in_inputs": [0]}
    return Prepared(
        name="sine",
        task="regression",
        input_size=1,
        output_size=1,
        train=split(0, 80),
        val=split(80, 100),
        test=split(100, 120),
        meta=meta,
    )


def _comparison(test_losses: dict[int, float]) -> Comparison:
    depths = [DepthEntry(depth=d, test_loss_mean=loss) for d, loss in test_losses.items()]
    return Comparison(
        search="s",
        experiment_id="0",
        mlflow_run_id="r",
        dataset={},
        task="regression",
        trials_per_depth=2,
        depths=depths,
        evaluation={"seeds": [1, 2]},
    )


def test_every_depth_losing_to_persistence_gets_a_headline():
    data = _series_data()
    naive = checks.baselines.persistence(data)["loss"]
    comparison = _comparison({1: naive * 1.5, 2: naive * 3.0})
    checks.add_baselines(comparison, data)
    assert comparison.loses_to_naive is True
    assert all(e.skill < 0 for e in comparison.depths)
    sentence = checks.headline(comparison)
    assert sentence.startswith("Every depth does worse than the naive persistence forecast")
    assert f"{naive:.4g}" in sentence
    json.dumps(comparison.to_dict(), allow_nan=False)


def test_one_depth_beating_persistence_means_no_headline():
    data = _series_data()
    naive = checks.baselines.persistence(data)["loss"]
    comparison = _comparison({1: naive * 0.5, 2: naive * 3.0})
    checks.add_baselines(comparison, data)
    assert comparison.loses_to_naive is False and checks.headline(comparison) is None
    assert comparison.entry(1).skill == pytest.approx(0.5)


def test_warnings_read_the_searched_ranges_from_the_spec():
    spec = SearchSpec.model_validate(
        {
            "name": "s",
            "dataset": {"name": "sine"},
            "depths": [1, 2],
            "trials_per_depth": 4,
            "space": {"units": [8, 16, 32], "lr": [1e-4, 1e-2]},
            "train": {"epochs": 10},
        }
    )
    comparison = _comparison({1: 0.5, 2: 0.6})
    for entry, units in zip(comparison.depths, ([32], [8, 16]), strict=True):
        entry.best_config = {"model": {"units": units, "dropout": 0.0}, "train": {"lr": 1e-2}}
        entry.val_curve = [1.0] * 9 + [0.5]  # best at the last epoch
        entry.expected_best = [1.0, 0.9, 0.8, 0.5]
    checks.add_warnings(spec, comparison, _series_data(), eval_val_loss={1: 0.05, 2: 0.6})
    found = {(w.code, w.depth) for w in comparison.warnings}
    assert ("best_epoch_at_end", 1) in found and ("best_epoch_at_end", 2) in found
    assert ("at_range_bound", 1) in found  # units 32 is the largest choice; lr 0.01 the top of its range
    assert ("distribution_shift", 1) in found  # a test loss ten times the validation loss
    assert ("too_few_test_windows", None) in found  # 14 test windows
    assert ("budget_still_improving", 1) in found
    units_2 = [w for w in comparison.warnings if w.code == "at_range_bound" and w.depth == 2]
    assert [w.figures["param"] for w in units_2] == ["units_0", "lr"]  # 8 is the smallest choice
