"""Budget curves on made-up trials whose answers are known: the expected best of n trials, and where curves cross."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stacktune.search.verdict.curves import curve_crossings, expected_best, expected_best_std


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
    assert all(later <= earlier + 1e-12 for earlier, later in zip(curve[:-1], curve[1:], strict=True))
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


def test_curve_crossings_finds_where_two_depths_swap_order():
    # Depth 1 is better (lower) up to x = 5, depth 2 after; depth 3 stays worst and never crosses anything.
    x = [0.0, 10.0]
    curves = {1: (x, [1.0, 3.0]), 2: (x, [2.0, 2.0]), 3: (x, [4.0, 5.0])}
    ((a, b, where),) = curve_crossings(curves)
    assert (a, b) == (1, 2) and where == pytest.approx(5.0, abs=0.1)
    assert curve_crossings({1: (x, [1.0, 1.0]), 2: ([20.0, 30.0], [0.0, 2.0])}) == []  # no shared range
