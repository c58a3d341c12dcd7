"""The verdict's error rates, power and interval coverage, measured on simulated searches with known answers.

Every simulation draws from a fixed seed, so each test is deterministic. A rate is checked against its target with a
one-sided exact binomial test at 1%: the test fails only when the observed rate is significantly worse than the
target, which allows for the Monte Carlo error of a few hundred replications (about 1 percentage point at a 5% rate)
while still catching a rule that misses the target by a real margin. benchmarks/verdict.py measures the same
figures with 2,000 replications.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from stacktune.search.analysis.stats import DEFAULT_SEEDS, compare, difference_ci, min_seeds

REPS = 600


def _at_most(hits: int, reps: int, target: float) -> bool:
    """The observed rate is not significantly above ``target`` (one-sided binomial test at 1%)."""
    return st.binomtest(hits, reps, target, alternative="greater").pvalue >= 0.01


def _at_least(hits: int, reps: int, target: float) -> bool:
    """The observed rate is not significantly below ``target`` (one-sided binomial test at 1%)."""
    return st.binomtest(hits, reps, target, alternative="less").pvalue >= 0.01


@pytest.mark.parametrize("seeds", [2, 3, 4, 5, 8, 12, 20, 30])
def test_equal_depths_rarely_get_a_winner(seeds):
    rng = np.random.default_rng(100 + seeds)
    hits = sum(
        compare({1: rng.normal(0, 1, seeds), 2: rng.normal(0, 1, seeds)}).winner is not None for _ in range(REPS)
    )
    assert _at_most(hits, REPS, 0.05), hits / REPS


@pytest.mark.parametrize("depths", [3, 4, 5, 6])
def test_equal_depths_rarely_see_any_depth_beaten(depths):
    rng = np.random.default_rng(200 + depths)
    hits = 0
    for _ in range(REPS):
        verdict = compare({d: rng.normal(0, 1, DEFAULT_SEEDS) for d in range(1, depths + 1)})
        hits += any(p.better is not None for p in verdict.pairs)
    assert _at_most(hits, REPS, 0.05), hits / REPS


def test_a_two_sd_difference_is_found_and_never_reversed():
    rng = np.random.default_rng(300)
    winners = [
        compare({1: rng.normal(-2, 1, DEFAULT_SEEDS), 2: rng.normal(0, 1, DEFAULT_SEEDS)}).winner for _ in range(REPS)
    ]
    assert _at_least(winners.count(1), REPS, 0.90), winners.count(1) / REPS
    assert winners.count(2) == 0


@pytest.mark.parametrize("kind", ["normal", "lognormal"])
def test_difference_interval_covers_the_true_difference(kind):
    rng = np.random.default_rng(400 + len(kind))
    reps, covered = 600, 0
    sigma, shift = 0.3, 0.2
    for _ in range(reps):
        if kind == "normal":
            a, b, truth = rng.normal(1.0, 1.0, DEFAULT_SEEDS), rng.normal(0.3, 2.0, DEFAULT_SEEDS), 0.7
        else:
            a, b = rng.lognormal(0.0, sigma, DEFAULT_SEEDS), rng.lognormal(shift, sigma, DEFAULT_SEEDS)
            truth = math.exp(sigma**2 / 2) - math.exp(shift + sigma**2 / 2)
        _, ci = difference_ci(a, b)
        covered += ci.low <= truth <= ci.high
    assert _at_least(covered, reps, 0.93), covered / reps


@pytest.mark.parametrize("seeds", [1, 2, 3])
@pytest.mark.parametrize("depths", [2, 3])
def test_one_to_three_seeds_never_name_a_winner(seeds, depths):
    # Everything points one way: depth 1 far below depth 2, depth 2 far below depth 3.
    rng = np.random.default_rng(seeds)
    for _ in range(20):
        verdict = compare({d: rng.normal(10.0 * d, 1.0, seeds) for d in range(1, depths + 1)})
        needed = min_seeds(depths)
        assert verdict.winner is None and verdict.undecided and verdict.needed_seeds == needed > seeds
        assert all(p.better is None and not p.decidable for p in verdict.pairs)
        noun = "seed" if seeds == 1 else "seeds"
        named = ", ".join(str(d) for d in range(1, depths)) + f" and {depths}"
        assert verdict.summary == f"{seeds} {noun} cannot decide between depths {named}; at least {needed} are needed"


def test_failed_runs_count_as_the_worst_outcome():
    rng = np.random.default_rng(600)
    n = DEFAULT_SEEDS
    # A depth whose every run failed loses to any finite one, given enough seeds.
    for _ in range(20):
        verdict = compare({1: [math.inf] * n, 2: rng.normal(1e6, 1e6, n)})
        assert verdict.winner == 2 and verdict.pairs[0].n_a == n and verdict.pairs[0].p_a_better == 0.0
    # One failed run in the better depth costs it that run's comparisons, and it is still counted.
    wins = 0
    for _ in range(REPS // 4):
        better, worse = rng.normal(-3, 1, n), rng.normal(0, 1, n)
        better[0] = math.nan
        pair = compare({1: better, 2: worse}).pairs[0]
        assert pair.n_a == n and pair.difference is None
        assert pair.p_a_better == pytest.approx(((better[1:, None] < worse[None, :]).sum()) / n**2)
        wins += pair.better == 1
    assert wins > 0.8 * (REPS // 4)
