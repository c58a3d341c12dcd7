"""Search diagnostics on hand-made inputs: each code raised and not raised, at and around its boundary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stacktune.datasets.types import Prepared, Split
from stacktune.search.verdict.diagnostics import (
    CODES,
    at_range_bound,
    best_epoch_at_end,
    budget_still_improving,
    collect,
    distribution_shift,
    every_depth_loses,
    target_ranges,
    too_few_seeds,
    too_few_test_windows,
)


def _plain(warning: dict) -> dict:
    """The warning survives strict JSON and has the documented shape."""
    json.dumps(warning, allow_nan=False)
    assert set(warning) == {"code", "sentence", "figures", "depth"}
    assert warning["code"] in CODES
    assert isinstance(warning["sentence"], str) and warning["sentence"].endswith(".")
    assert warning["sentence"].count(". ") == 0  # one sentence
    return warning


def _regression(train_y: np.ndarray, test_y: np.ndarray, **meta) -> Prepared:
    def split(y):
        y = np.asarray(y, np.float32)
        return Split(np.zeros((len(y), 3, 1), np.float32), y.reshape(len(y), -1))

    return Prepared("hand", "regression", 1, split(train_y).y.shape[1], split(train_y), split(train_y), split(test_y),
                    meta=meta)  # fmt: skip


# ----------------------------------------------------------------------------- best_epoch_at_end


def test_best_epoch_at_the_last_epoch_is_raised():
    curve = [1.0 - 0.01 * i for i in range(20)]  # still falling at epoch 20

    w = _plain(best_epoch_at_end(depth=2, val_curve=curve, max_epochs=20))

    assert w["code"] == "best_epoch_at_end" and w["depth"] == 2
    assert w["sentence"] == (
        "Depth 2's best trial had its lowest validation loss at epoch 20 of 20: give it more epochs (train.epochs)."
    )
    assert w["figures"]["best_epoch"] == 20 and w["figures"]["max_epochs"] == 20


def test_best_epoch_exactly_at_90_percent_is_not_raised_and_just_after_is():
    def curve(best: int) -> list[float]:
        return [0.1 if e == best else 1.0 for e in range(1, 21)]

    assert best_epoch_at_end(depth=1, val_curve=curve(18), max_epochs=20) is None  # 18 = 0.9 * 20
    assert best_epoch_at_end(depth=1, val_curve=curve(19), max_epochs=20)["figures"]["best_epoch"] == 19
    assert best_epoch_at_end(depth=1, val_curve=curve(9), max_epochs=10) is None  # 9 = 0.9 * 10
    assert best_epoch_at_end(depth=1, val_curve=curve(10)[:10], max_epochs=10) is not None


def test_best_epoch_skips_non_finite_values_and_uses_the_maximum_epochs():
    # pruned after 5 of 50 epochs: its best epoch 5 is early in the budget
    assert best_epoch_at_end(depth=1, val_curve=[1.0, 0.9, 0.8, 0.7, 0.6], max_epochs=50) is None
    # a NaN last epoch does not count; the best finite one is epoch 19 of 20
    curve = [1.0] * 18 + [0.5, math.nan]
    w = _plain(best_epoch_at_end(depth=3, val_curve=curve, max_epochs=20))
    assert w["figures"]["best_epoch"] == 19
    assert best_epoch_at_end(depth=1, val_curve=[math.nan, math.inf], max_epochs=2) is None
    assert best_epoch_at_end(depth=1, val_curve=[], max_epochs=2) is None


# ----------------------------------------------------------------------------- at_range_bound

RANGES = {"lr": (1e-4, 1e-2, True), "dropout": (0.0, 0.5, False), "units": [16, 32, 64, 128]}


def test_a_best_lr_at_the_top_of_its_log_range_is_raised():
    found = at_range_bound(depth=2, best_params={"lr": 0.0095, "dropout": 0.2, "units": 32}, ranges=RANGES)

    assert len(found) == 1
    w = _plain(found[0])
    assert w["depth"] == 2
    assert w["figures"]["param"] == "lr" and w["figures"]["edge"] == "upper" and w["figures"]["log"] is True
    assert w["figures"]["position"] == pytest.approx(1 + math.log10(0.95) / 2)
    assert "0.0095" in w["sentence"] and "[0.0001, 0.01]" in w["sentence"] and "space.lr" in w["sentence"]
    assert "widen" in w["sentence"]


def test_log_ranges_are_measured_on_a_log_scale():
    # 0.00015 of [1e-4, 1e-2]: 0.5% of the way on a linear scale, 8.8% on a log scale
    assert at_range_bound(depth=1, best_params={"lr": 0.00015}, ranges={"lr": (1e-4, 1e-2, True)}) == []
    linear = at_range_bound(depth=1, best_params={"lr": 0.00015}, ranges={"lr": (1e-4, 1e-2, False)})
    assert [w["figures"]["edge"] for w in linear] == ["lower"]
    # 0.7 of [1e-4, 1]: 70% linearly, 96% on a log scale
    assert at_range_bound(depth=1, best_params={"lr": 0.7}, ranges={"lr": (1e-4, 1.0, False)}) == []
    (high,) = at_range_bound(depth=1, best_params={"lr": 0.7}, ranges={"lr": (1e-4, 1.0, True)})
    assert high["figures"]["edge"] == "upper" and "log scale" in high["sentence"]
    # 0.00011 of [1e-4, 1e-2] is 2% on the log scale: the lower edge
    (low,) = at_range_bound(depth=1, best_params={"lr": 0.00011}, ranges={"lr": (1e-4, 1e-2, True)})
    assert low["figures"]["edge"] == "lower" and "below 0.0001" in low["sentence"]


def test_exactly_5_percent_from_an_edge_is_raised_and_inside_is_not():
    r = {"dropout": (0.1, 1.1, False)}
    assert at_range_bound(depth=1, best_params={"dropout": 1.05}, ranges=r)[0]["figures"]["edge"] == "upper"
    assert at_range_bound(depth=1, best_params={"dropout": 0.15}, ranges=r)[0]["figures"]["edge"] == "lower"
    assert at_range_bound(depth=1, best_params={"dropout": 1.0}, ranges=r) == []  # 90%
    assert at_range_bound(depth=1, best_params={"dropout": 0.2}, ranges=r) == []  # 10%
    assert at_range_bound(depth=1, best_params={"dropout": 0.95}, ranges={"dropout": (0.0, 1.0, False)})


def test_a_lower_bound_of_zero_cannot_be_widened():
    assert at_range_bound(depth=1, best_params={"dropout": 0.0}, ranges=RANGES) == []
    assert at_range_bound(depth=1, best_params={"dropout": 0.49}, ranges=RANGES)[0]["figures"]["edge"] == "upper"


def test_choices_are_at_the_edge_when_smallest_or_largest_of_three_or_more():
    top = at_range_bound(depth=3, best_params={"units": 128}, ranges=RANGES)
    bottom = at_range_bound(depth=3, best_params={"units": 16}, ranges=RANGES)

    assert [w["figures"]["edge"] for w in top] == ["upper"] and [w["figures"]["edge"] for w in bottom] == ["lower"]
    assert "128" in top[0]["sentence"] and "space.units" in top[0]["sentence"]
    assert at_range_bound(depth=3, best_params={"units": 64}, ranges=RANGES) == []
    assert at_range_bound(depth=3, best_params={"units": 64}, ranges={"units": [32, 64]}) == []  # only 2 choices
    for w in top + bottom:
        _plain(w)


def test_flat_names_point_to_their_spec_field_and_ranges_may_be_dicts_or_json_lists():
    found = at_range_bound(
        depth=2,
        best_params={"units_0": 128, "lr": 1e-2, "weight_decay": 0.003},
        ranges={"units_0": [16, 32, 128], "lr": [1e-4, 1e-2, True], "weight_decay": {"low": 0.001, "high": 0.1}},
    )

    assert {w["figures"]["param"] for w in found} == {"units_0", "lr", "weight_decay"}
    units = next(w for w in found if w["figures"]["param"] == "units_0")
    assert units["figures"]["field"] == "space.units"


def test_params_without_a_range_or_value_are_skipped():
    assert at_range_bound(depth=1, best_params={"lr": 0.01}, ranges={}) == []
    assert at_range_bound(depth=1, best_params={}, ranges=RANGES) == []
    assert at_range_bound(depth=1, best_params={"lr": None, "units": "big"}, ranges=RANGES) == []


# ----------------------------------------------------------------------------- distribution_shift


def test_test_loss_five_times_the_validation_loss_is_raised_exactly_at_5x():
    w = distribution_shift(val_loss_by_depth={1: 0.1, 2: 0.1}, test_loss_by_depth={1: 0.5, 2: 0.49})

    assert len(w) == 1
    w = _plain(w[0])
    assert w["code"] == "distribution_shift" and w["depth"] == 1
    assert [d["depth"] for d in w["figures"]["depths"]] == [1]
    assert w["figures"]["depths"][0]["ratio"] == pytest.approx(5.0)
    assert "dataset.transform: diff" in w["sentence"] and "5.0x" in w["sentence"]


def test_several_shifted_depths_make_one_warning():
    w = distribution_shift(val_loss_by_depth={1: 0.1, 2: 0.2, 3: 0.1}, test_loss_by_depth={1: 0.6, 2: 1.6, 3: 0.2})

    assert len(w) == 1
    w = _plain(w[0])
    assert w["depth"] is None
    assert [d["depth"] for d in w["figures"]["depths"]] == [1, 2]
    assert "6.0x to 8.0x" in w["sentence"] and "depths 1 and 2" in w["sentence"]


def test_no_shift_below_5x_and_non_finite_losses_are_skipped():
    assert distribution_shift(val_loss_by_depth={1: 0.1}, test_loss_by_depth={1: 0.4}) == []
    assert distribution_shift(val_loss_by_depth={1: 0.0}, test_loss_by_depth={1: 0.4}) == []
    assert distribution_shift(val_loss_by_depth={1: 0.1}, test_loss_by_depth={1: math.inf}) == []
    assert distribution_shift(val_loss_by_depth={1: 0.1}, test_loss_by_depth={}) == []
    assert distribution_shift() == []


def test_a_test_mean_outside_the_training_range_is_raised():
    # horizon 2, one target: train values within [-1, 1], test values around 3
    train = np.array([[-1.0, 0.0], [0.5, 1.0], [0.0, -0.5]])
    test = np.array([[3.0, 3.2], [2.8, 3.0]])
    data = _regression(train, test, targets=["level"], horizon=2, columns=["level"])

    ranges = target_ranges(data)
    # unscaled (no y statistics), and the training values go negative: not a positive series
    assert ranges == [
        {"target": "level", "test_mean": pytest.approx(3.0), "train_min": -1.0, "train_max": 1.0, "positive": False}
    ]
    w = distribution_shift(targets=ranges)
    assert len(w) == 1
    w = _plain(w[0])
    assert w["depth"] is None and w["figures"]["targets"][0]["target"] == "level"
    assert "level, 3, lies above its training range [-1, 1]" in w["sentence"]
    assert "dataset.transform: diff" in w["sentence"]


def test_a_test_mean_inside_the_training_range_is_not_raised():
    data = _regression(np.array([[-1.0], [1.0], [0.0]]), np.array([[1.0], [0.5]]), targets=["v"], horizon=1)
    assert distribution_shift(targets=target_ranges(data)) == []  # mean 0.75; the maximum 1.0 itself is inside
    edge = _regression(np.array([[-1.0], [1.0]]), np.array([[1.0], [1.0]]), targets=["v"], horizon=1)
    assert distribution_shift(targets=target_ranges(edge)) == []  # exactly at the maximum


def test_a_positive_series_points_to_log_diff():
    # scaled targets whose raw values y * 2 + 10 are all positive
    data = _regression(
        np.array([[-1.0], [0.0], [1.0]]), np.array([[2.0], [2.5]]), targets=["sales"], horizon=1,
        scaled=True, y_mean=[10.0], y_std=[2.0],
    )  # fmt: skip
    ranges = target_ranges(data)
    assert ranges[0]["positive"] is True

    w = _plain(distribution_shift(targets=ranges)[0])
    assert "dataset.transform: log_diff" in w["sentence"] and w["figures"]["transform"] == "log_diff"
    ratio = _plain(distribution_shift(val_loss_by_depth={1: 0.1}, test_loss_by_depth={1: 1.0}, positive=True)[0])
    assert "log_diff" in ratio["sentence"]


def test_target_ranges_pool_the_horizon_steps_of_each_target():
    # two targets, horizon 2, step-major: columns are (a@1, b@1, a@2, b@2)
    train = np.array([[0.0, 10.0, 1.0, 11.0], [2.0, 12.0, 3.0, 13.0]])
    test = np.array([[1.0, 20.0, 1.0, 22.0]])
    data = _regression(train, test, targets=["a", "b"], horizon=2)

    a, b = target_ranges(data)

    assert (a["target"], a["test_mean"], a["train_min"], a["train_max"]) == ("a", 1.0, 0.0, 3.0)
    assert (b["target"], b["test_mean"], b["train_min"], b["train_max"]) == ("b", 21.0, 10.0, 13.0)
    (w,) = distribution_shift(targets=[a, b])
    assert [t["target"] for t in w["figures"]["targets"]] == ["b"]


def test_classification_has_no_target_ranges():
    split = Split(np.zeros((4, 3, 1), np.float32), np.array([0, 1, 0, 1]))
    assert target_ranges(Prepared("c", "classification", 1, 2, split, split, split)) == []


# ----------------------------------------------------------------------------- too_few_test_windows


def test_too_few_test_windows_boundary():
    w = _plain(too_few_test_windows(test_samples=49))
    assert w["figures"] == {"test_samples": 49, "minimum": 50} and w["depth"] is None
    assert "49" in w["sentence"] and "dataset.test_fraction" in w["sentence"]
    assert too_few_test_windows(test_samples=50) is None
    assert too_few_test_windows(test_samples=0)["figures"]["test_samples"] == 0


# ----------------------------------------------------------------------------- budget_still_improving


def test_an_expected_best_still_falling_over_the_last_quarter_is_raised():
    # N = 8: from n = 6 (index 5) to n = 8; 1.0 -> 0.9 is a 10% drop
    curve = [2.0, 1.5, 1.3, 1.2, 1.1, 1.0, 0.95, 0.9]

    w = _plain(budget_still_improving(depth=3, expected_best=curve))

    assert w["depth"] == 3
    assert w["figures"]["from_trials"] == 6 and w["figures"]["trials"] == 8
    assert w["figures"]["drop"] == pytest.approx(0.1)
    assert "trials_per_depth" in w["sentence"] and "10.0%" in w["sentence"]


def test_a_drop_of_exactly_2_percent_is_not_raised():
    # N = 4: from n = 3 (index 2) to n = 4
    assert budget_still_improving(depth=1, expected_best=[60.0, 55.0, 50.0, 49.0]) is None  # exactly 2%
    assert budget_still_improving(depth=1, expected_best=[60.0, 55.0, 50.0, 48.9]) is not None  # 2.2%


def test_a_flat_or_short_expected_best_is_not_raised():
    assert budget_still_improving(depth=1, expected_best=[1.0, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.399]) is None
    assert budget_still_improving(depth=1, expected_best=[1.0, 0.5, 0.1]) is None  # N < 4
    assert budget_still_improving(depth=1, expected_best=[]) is None
    assert budget_still_improving(depth=1, expected_best=[1.0, 0.9, math.inf, 0.1]) is None


def test_the_three_quarter_index_for_uneven_counts():
    # N = 10: from n = 7 (index 6): 1.0 -> 0.97 is 3%; index 7 would show only 1%
    curve = [3.0, 2.0, 1.5, 1.2, 1.1, 1.05, 1.0, 0.98, 0.975, 0.97]
    w = budget_still_improving(depth=1, expected_best=curve)
    assert w["figures"]["from_trials"] == 7 and w["figures"]["from_loss"] == 1.0


# ----------------------------------------------------------------------------- too_few_seeds


def _verdict(undecided: bool, needed, decidable: list[bool]) -> dict:
    pairs = [{"a": 1, "b": 2 + i, "decidable": d, "n_a": 3, "n_b": 3} for i, d in enumerate(decidable)]
    return {"winner": None, "undecided": undecided, "needed_seeds": needed, "pairs": pairs}


def test_an_undecided_verdict_is_raised_with_the_seeds_needed():
    w = _plain(too_few_seeds(verdict=_verdict(True, 6, [False, True]), seeds=3))

    assert w["sentence"] == "3 seeds cannot decide depth 1 against depth 2; at least 6 are needed (evaluation.seeds)."
    assert w["figures"] == {"seeds": 3, "needed_seeds": 6, "undecided": True, "pairs": [{"a": 1, "b": 2}]}
    assert w["depth"] is None


def test_an_undecidable_pair_alone_is_raised_and_the_seeds_come_from_the_pairs():
    w = _plain(too_few_seeds(verdict=_verdict(False, None, [True, False, False])))

    assert w["figures"]["seeds"] == 3
    assert w["sentence"] == (
        "3 seeds cannot decide depth 1 against depth 3 and depth 1 against depth 4; raise evaluation.seeds."
    )


def test_a_decided_verdict_is_not_raised():
    assert too_few_seeds(verdict=_verdict(False, None, [True, True]), seeds=5) is None
    assert too_few_seeds(verdict={}, seeds=5) is None


# ----------------------------------------------------------------------------- every_depth_loses


def test_every_depth_loses():
    assert every_depth_loses({1: 0.6, 2: 0.5}, 0.5) is True  # a tie loses
    assert every_depth_loses({1: 0.6, 2: 0.49}, 0.5) is False
    assert every_depth_loses({1: math.inf, 2: 0.7}, 0.5) is True
    assert every_depth_loses({}, 0.5) is False
    assert every_depth_loses({1: 0.6}, math.nan) is False


# ----------------------------------------------------------------------------- collect


def test_collect_returns_every_code_in_order_and_all_are_plain_json():
    data = _regression(np.array([[-1.0], [1.0], [0.0]]), np.array([[3.0]] * 10), targets=["v"], horizon=1)
    verdict = _verdict(True, 8, [False])

    found = collect(
        val_curves={1: [1.0, 0.5], 2: [0.4, 0.5]},
        max_epochs=2,
        best_params={1: {"lr": 0.01}, 2: {"lr": 0.001}},
        ranges={"lr": (1e-4, 1e-2, True)},
        val_loss_by_depth={1: 0.1, 2: 0.1},
        test_loss_by_depth={1: 1.0, 2: 0.2},
        data=data,
        expected_best={1: [1.0, 0.8, 0.7, 0.5], 2: [1.0, 1.0, 1.0, 1.0]},
        verdict=verdict,
        seeds=3,
    )

    assert [(w["code"], w["depth"]) for w in found] == [
        ("best_epoch_at_end", 1),
        ("at_range_bound", 1),
        ("distribution_shift", 1),
        ("distribution_shift", None),
        ("too_few_test_windows", None),
        ("budget_still_improving", 1),
        ("too_few_seeds", None),
    ]
    for w in found:
        _plain(w)
    json.dumps(found, allow_nan=False)


def test_collect_with_nothing_wrong_or_nothing_given_is_empty():
    assert collect() == []
    assert collect(test_samples=500, val_curves={1: [0.5, 0.4, 0.45, 0.5]}, max_epochs=4) == []


def test_figures_never_hold_nan_or_inf():
    w = best_epoch_at_end(depth=1, val_curve=[math.nan, 0.3], max_epochs=2)
    json.dumps(w, allow_nan=False)
    target = {"target": "v", "test_mean": 5.0, "train_min": -1.0, "train_max": 1.0, "positive": None, "x": math.inf}
    shifted = distribution_shift(targets=[target])
    assert shifted[0]["figures"]["targets"][0]["x"] is None
    json.dumps(shifted, allow_nan=False)
