"""Depth verdicts and budget curves on made-up losses whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stacktune.search.analysis.stats import (
    Interval,
    Pair,
    Verdict,
    compare,
    difference_ci,
    expected_best,
    expected_best_std,
    mean_ci,
    prob_better,
)


def _clear_losses(seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        1: rng.normal(1.0, 0.01, 5),
        2: rng.normal(0.5, 0.01, 5),
        6: rng.normal(0.8, 0.01, 5),
    }


# ----------------------------------------------------------------------------- intervals


def test_interval_as_list():
    assert Interval(0.25, 0.75).as_list() == [0.25, 0.75]


def test_mean_ci_contains_mean_and_single_value_is_a_point():
    values = [1.0, 2.0, 3.0, 4.0]
    mean, ci = mean_ci(values)
    assert mean == pytest.approx(2.5)
    assert 1.0 <= ci.low < mean < ci.high <= 4.0
    assert mean_ci([0.3]) == (0.3, Interval(0.3, 0.3))
    mean, ci = mean_ci([0.7, 0.7, 0.7])
    assert (mean, ci.low, ci.high) == pytest.approx((0.7, 0.7, 0.7))


def test_difference_ci_paired_removes_shared_seed_noise():
    rng = np.random.default_rng(3)
    seed_effect = rng.normal(0.0, 1.0, 8)
    a = seed_effect + 0.1 + rng.normal(0.0, 0.01, 8)
    b = seed_effect
    diff, paired_ci = difference_ci(a, b, paired=True)
    _, unpaired_ci = difference_ci(a, b, paired=False)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert paired_ci.low > 0.0
    assert paired_ci.high - paired_ci.low < 0.1 * (unpaired_ci.high - unpaired_ci.low)
    assert unpaired_ci.low < 0.0 < unpaired_ci.high


def test_difference_ci_coverage():
    """The 95% interval of a difference of means covers the truth at about the stated rate."""
    rng = np.random.default_rng(2024)
    experiments, covered_diff, covered_mean = 300, 0, 0
    for k in range(experiments):
        a = rng.normal(1.0, 1.0, 10)
        b = rng.normal(0.3, 2.0, 10)
        _, ci = difference_ci(a, b, n_boot=2000, seed=k)
        covered_diff += ci.low <= 0.7 <= ci.high
        _, ci = mean_ci(a, n_boot=2000, seed=k)
        covered_mean += ci.low <= 1.0 <= ci.high
    # Percentile bootstrap undercovers a little at n = 10 (about 0.92 expected).
    assert 0.88 <= covered_diff / experiments <= 0.99
    assert 0.85 <= covered_mean / experiments <= 0.99


@pytest.mark.parametrize("paired", [True, False])
def test_prob_better_extremes(paired):
    low, high = [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]
    assert prob_better(low, high, paired=paired) == (1.0, Interval(1.0, 1.0))
    assert prob_better(high, low, paired=paired) == (0.0, Interval(0.0, 0.0))
    p, ci = prob_better(low, low, paired=paired)
    assert p == 0.5
    if paired:
        assert ci == Interval(0.5, 0.5)
    else:
        assert ci.low <= 0.5 <= ci.high


def test_prob_better_paired_small_example():
    a = [1.0, 2.0, 3.0, 4.0]
    b = [2.0, 1.0, 3.0, 5.0]
    # a wins at 0 and 3, loses at 1, ties at 2: (1 + 0 + 0.5 + 1) / 4.
    p, ci = prob_better(a, b, paired=True)
    assert p == pytest.approx(0.625)
    assert 0.0 <= ci.low <= p <= ci.high <= 1.0


def test_prob_better_unpaired_is_mann_whitney_auc():
    a = [1.0, 3.0]
    b = [2.0, 3.0, 4.0]
    # pairs: (1,2)(1,3)(1,4) win; (3,2) loss, (3,3) tie, (3,4) win -> 4.5 / 6.
    p, _ = prob_better(a, b)
    assert p == pytest.approx(0.75)
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 1, 7), 1)
    y = np.concatenate([x[:3], np.round(rng.normal(0.5, 1, 6), 1)])  # shares three values with x: ties
    brute = sum((xi < yj) + 0.5 * (xi == yj) for xi in x for yj in y) / (7 * 9)
    assert prob_better(x, y)[0] == pytest.approx(brute)


def test_compare_uses_same_resamples_as_public_functions():
    losses = _clear_losses(1)
    verdict = compare(losses, n_boot=500, seed=9)
    pair = verdict.pairs[0]
    assert (pair.a, pair.b) == (1, 2)
    assert (pair.difference, pair.difference_ci) == difference_ci(losses[1], losses[2], n_boot=500, seed=9, paired=True)
    assert (pair.p_a_better, pair.p_a_better_ci) == prob_better(losses[1], losses[2], n_boot=500, seed=9, paired=True)


def test_input_errors():
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError):
        difference_ci([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError):
        compare({})
    with pytest.raises(ValueError):
        compare({1: [1.0], 2: []})
    with pytest.raises(ValueError):
        compare({1: [1.0], 2: [2.0]}, threshold=0.4)


# ----------------------------------------------------------------------------- verdict


def test_compare_clear_winner():
    verdict = compare(_clear_losses())
    assert verdict.winner == 2
    assert verdict.tied == [2]
    by_pair = {(p.a, p.b): p for p in verdict.pairs}
    assert sorted(by_pair) == [(1, 2), (1, 6), (2, 6)]
    # 1 vs 2: depth 2 is lower, so P(1 beats 2) is near 0 and the difference is positive.
    p12 = by_pair[(1, 2)]
    assert p12.better == 2 and p12.p_a_better <= 0.05 and p12.p_a_better_ci.high < 0.5
    assert p12.difference == pytest.approx(0.5, abs=0.05) and p12.difference_ci.low > 0.4
    assert by_pair[(1, 6)].better == 6 and by_pair[(1, 6)].p_a_better <= 0.05
    p26 = by_pair[(2, 6)]
    assert p26.better == 2 and p26.p_a_better >= 0.95 and p26.p_a_better_ci.low > 0.5
    assert p26.difference_ci.high < 0.0
    assert "0.75" in verdict.rule and "0.5" in verdict.rule


@pytest.mark.parametrize("paired", [True, False])
def test_compare_identical_values_tie(paired):
    same = [0.4, 0.5, 0.6, 0.55, 0.45]
    verdict = compare({6: same, 1: same, 2: same}, paired=paired)
    assert verdict.winner is None
    assert verdict.tied == [1, 2, 6]
    assert all(p.better is None for p in verdict.pairs)
    assert all(p.difference == 0.0 and p.p_a_better == 0.5 for p in verdict.pairs)


def test_compare_same_distribution_ties():
    rng = np.random.default_rng(0)
    losses = {d: rng.normal(1.0, 0.1, 5) for d in (1, 2, 6)}
    verdict = compare(losses)
    assert verdict.winner is None
    assert verdict.tied == [1, 2, 6]


@pytest.mark.parametrize(("paired", "bound"), [(True, 0.11), (False, 0.15)])
def test_compare_false_verdict_rate_under_the_null(paired, bound):
    """With 5 seeds from one distribution a pair is rarely called (about 6% paired, 9% unpaired)."""
    rng = np.random.default_rng(11)
    experiments, called = 300, 0
    for k in range(experiments):
        verdict = compare({1: rng.normal(1, 0.1, 5), 2: rng.normal(1, 0.1, 5)}, n_boot=1000, seed=k, paired=paired)
        called += verdict.winner is not None
    assert called / experiments < bound


def test_compare_two_tie_for_first():
    rng = np.random.default_rng(4)
    base = rng.normal(0.5, 0.01, 5)
    # Depth 2 is depth 1 nudged down on two seeds and up on two: P(1 beats 2) = 0.5.
    losses = {1: base, 2: base + [-0.01, 0.01, -0.01, 0.01, 0.0], 6: rng.normal(0.9, 0.01, 5)}
    verdict = compare(losses)
    assert verdict.winner is None
    assert verdict.tied == [1, 2]
    by_pair = {(p.a, p.b): p.better for p in verdict.pairs}
    assert by_pair == {(1, 2): None, (1, 6): 1, (2, 6): 2}


def test_compare_unequal_lengths_fall_back_to_unpaired():
    a, b = [0.5, 0.6, 0.55], [0.9, 1.0, 0.95, 0.92, 0.97]
    verdict = compare({1: a, 2: b}, n_boot=500, seed=3)
    assert verdict.winner == 1
    pair = verdict.pairs[0]
    assert (pair.p_a_better, pair.p_a_better_ci) == prob_better(a, b, n_boot=500, seed=3, paired=False)


def test_compare_single_values_and_single_depth():
    verdict = compare({1: [0.4], 2: [0.5]})
    pair = verdict.pairs[0]
    assert pair.difference_ci == Interval(pytest.approx(-0.1), pytest.approx(-0.1))
    assert (pair.p_a_better, pair.p_a_better_ci) == (1.0, Interval(1.0, 1.0))
    assert verdict.winner == 1
    only = compare({3: [0.2, 0.3]})
    assert (only.winner, only.tied, only.pairs) == (3, [3], [])


def test_verdict_to_dict_is_plain_json():
    losses = {np.int64(k): v for k, v in _clear_losses().items()}
    verdict = compare(losses, n_boot=500)
    data = verdict.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["winner"] == 2 and data["tied"] == [2]
    assert isinstance(data["rule"], str) and data["rule"]
    for pair in data["pairs"]:
        for key in ("difference_ci", "p_a_better_ci"):
            low, high = pair[key]
            assert isinstance(pair[key], list) and isinstance(low, float) and low <= high
        assert type(pair["a"]) is int and type(pair["b"]) is int
    tie = compare({1: [1.0, 2.0], 2: [1.0, 2.0]}).to_dict()
    assert tie["winner"] is None and tie["pairs"][0]["better"] is None
    json.dumps(tie)


def test_same_seed_same_results():
    losses = _clear_losses(7)
    assert compare(losses, seed=5) == compare(losses, seed=5)
    assert mean_ci(losses[1], seed=5) == mean_ci(losses[1], seed=5)
    assert difference_ci(losses[1], losses[2], seed=5) == difference_ci(losses[1], losses[2], seed=5)
    assert prob_better(losses[1], losses[6], seed=5) == prob_better(losses[1], losses[6], seed=5)
    assert mean_ci(losses[1], seed=5) != mean_ci(losses[1], seed=6)
    assert isinstance(compare(losses), Verdict) and isinstance(compare(losses).pairs[0], Pair)


# ----------------------------------------------------------------------------- expected best versus budget


def test_expected_best_hand_computed():
    assert expected_best([3.0, 1.0, 2.0], n_max=2) == pytest.approx([2.0, 14 / 9])
    # E[min^2] at n = 2 is (1*5 + 4*3 + 9*1) / 9 = 26/9.
    assert expected_best_std([1.0, 2.0, 3.0], n_max=2) == pytest.approx(
        [math.sqrt(2 / 3), math.sqrt(26 / 9 - (14 / 9) ** 2)]
    )


def test_expected_best_shape_and_limits():
    rng = np.random.default_rng(8)
    values = rng.uniform(0.2, 1.0, 20)
    curve = expected_best(values)
    assert len(curve) == 20
    assert curve[0] == pytest.approx(values.mean())
    assert all(later <= earlier + 1e-12 for earlier, later in zip(curve, curve[1:], strict=False))
    assert expected_best(values, n_max=2000)[-1] == pytest.approx(values.min(), abs=1e-9)
    assert expected_best_std(values, n_max=2000)[-1] == pytest.approx(0.0, abs=1e-6)
    assert expected_best_std(values)[0] == pytest.approx(values.std())


def test_expected_best_drops_non_finite_and_handles_empty():
    assert expected_best([1.0, float("nan"), 2.0, 3.0, float("inf")], n_max=2) == pytest.approx([2.0, 14 / 9])
    assert len(expected_best([1.0, float("nan"), 2.0])) == 2
    assert expected_best([]) == [] and expected_best_std([]) == []
    assert expected_best([float("nan")], n_max=5) == []
    assert expected_best([1.0, 2.0], n_max=0) == []
    assert expected_best([0.7, 0.7, 0.7]) == pytest.approx([0.7] * 3)
    with pytest.raises(ValueError):
        expected_best([1.0], n_max=-1)


def test_expected_best_matches_monte_carlo():
    rng = np.random.default_rng(21)
    values = np.round(rng.exponential(1.0, 12), 1)  # rounding makes ties
    draws = rng.choice(values, size=(100_000, 10))
    minima = np.minimum.accumulate(draws, axis=1)  # column n-1: min of the first n draws
    assert expected_best(values, n_max=10) == pytest.approx(minima.mean(axis=0), abs=0.01)
    assert expected_best_std(values, n_max=10) == pytest.approx(minima.std(axis=0), abs=0.01)
