"""The verdict's error rates, power and interval coverage, measured on simulated searches with known answers.

Every simulation draws from a fixed seed, so each test is deterministic. A rate is checked against its target with a
one-sided exact binomial test at 1%: the test fails only when the observed rate is significantly worse than the
target, which allows for the Monte Carlo error of a few hundred replications (about 1.3 percentage points at a 5%
rate) while still catching a rule that misses the target by a real margin. benchmarks/verdict.py measures the same
figures, and more, with 2,000 replications.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from benchmarks.verdict import draw
from stacktune.search.verdict.stats import DEFAULT_SEEDS, compare, mean_interval, min_seeds, trend
from stacktune.search.verdict.versus_fixed import compare_settings

pytestmark = pytest.mark.slow  # hundreds of simulated searches a test
REPS = 300


def _at_most(hits: int, reps: int, target: float) -> bool:
    """The observed rate is not significantly above ``target`` (one-sided binomial test at 1%)."""
    return st.binomtest(hits, reps, target, alternative="greater").pvalue >= 0.01


def _at_least(hits: int, reps: int, target: float) -> bool:
    """The observed rate is not significantly below ``target`` (one-sided binomial test at 1%)."""
    return st.binomtest(hits, reps, target, alternative="less").pvalue >= 0.01


@pytest.mark.parametrize(
    ("kind", "n_a", "n_b", "spread"),
    [
        ("normal", 6, 6, 5.0),
        ("normal", 8, 8, 1.0),
        ("normal", 8, 8, 5.0),
        ("t3", 8, 8, 3.0),
        ("lognormal", 8, 8, 3.0),
        ("discretised", 8, 8, 3.0),
        ("normal", 20, 7, 3.0),
        ("normal", 20, 5, 3.0),
        ("normal", 30, 30, 5.0),
    ],
)
def test_depths_that_differ_only_in_spread_rarely_get_a_winner(kind, n_a, n_b, spread):
    rng = np.random.default_rng(100 + n_a + 7 * n_b + int(spread))
    hits = sum(
        compare({1: draw(rng, kind, n_a, 1.0), 2: draw(rng, kind, n_b, spread)}).winner is not None for _ in range(REPS)
    )
    assert _at_most(hits, REPS, 0.05), hits / REPS


def test_the_lognormal_null_is_a_null():
    rng = np.random.default_rng(0)
    x, y = draw(rng, "lognormal", 200_000, 1.0), draw(rng, "lognormal", 200_000, 3.0)
    assert np.mean(x < y) == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("depths", [3, 6])
def test_equal_depths_rarely_see_any_depth_left_out_of_the_best(depths):
    rng = np.random.default_rng(200 + depths)
    hits = 0
    for _ in range(REPS):
        verdict = compare({d: rng.normal(0, 1, DEFAULT_SEEDS) for d in range(1, depths + 1)})
        hits += len(verdict.best_set) < depths or any(p.better is not None for p in verdict.pairs)
    assert _at_most(hits, REPS, 0.05), hits / REPS


def test_a_two_sd_difference_is_found_and_never_reversed():
    rng = np.random.default_rng(300)
    winners = [
        compare({1: rng.normal(-2, 1, DEFAULT_SEEDS), 2: rng.normal(0, 1, DEFAULT_SEEDS)}).winner for _ in range(REPS)
    ]
    assert _at_least(winners.count(1), REPS, 0.90), winners.count(1) / REPS
    assert winners.count(2) == 0


def test_a_best_depth_among_three_is_named_more_often_than_holm_over_all_pairs_named_it():
    rng = np.random.default_rng(310)
    hits = 0
    for _ in range(REPS):
        losses = {d: rng.normal(0, 1, DEFAULT_SEEDS) for d in (1, 2, 3)}
        losses[2] = losses[2] - 2.0
        hits += compare(losses).winner == 2
    assert _at_least(hits, REPS, 0.81), hits / REPS  # all pairs, Holm-adjusted, named it in 81%


def test_a_trend_of_half_a_seed_sd_per_layer_is_found_and_a_flat_one_rarely():
    rng = np.random.default_rng(320)
    found = flat_calls = spread_calls = 0
    for _ in range(REPS):
        found += trend({d: rng.normal(-0.5 * d, 1.0, DEFAULT_SEEDS) for d in range(1, 7)}).direction == "down"
        flat_calls += trend({d: rng.normal(0.0, 1.0, DEFAULT_SEEDS) for d in range(1, 7)}).direction is not None
        # Deeper stacks varying more between seeds, no change in the mean.
        spread_calls += trend({d: rng.normal(0.0, 0.5 * d, DEFAULT_SEEDS) for d in range(1, 7)}).direction is not None
    assert _at_least(found, REPS, 0.90), found / REPS
    assert _at_most(flat_calls, REPS, 0.05), flat_calls / REPS
    assert _at_most(spread_calls, REPS, 0.05), spread_calls / REPS


@pytest.mark.parametrize(("kind", "truth"), [("lognormal", math.exp(0.5)), ("normal", 1.0)])
def test_the_per_depth_interval_covers_skewed_and_normal_losses(kind, truth):
    rng = np.random.default_rng(400 + len(kind))
    reps, covered = 1000, 0
    for _ in range(reps):
        values = rng.lognormal(0.0, 1.0, DEFAULT_SEEDS) if kind == "lognormal" else rng.normal(1.0, 0.5, DEFAULT_SEEDS)
        _, ci = mean_interval(values)
        covered += ci.low <= truth <= ci.high
    assert _at_least(covered, reps, 0.93), covered / reps


def test_tuned_and_fixed_from_the_same_distributions_are_rarely_called_changed():
    rng = np.random.default_rng(500)
    changed = 0
    for _ in range(REPS // 2):
        centres = {1: 0.5, 2: 0.52, 3: 0.6}
        tuned = {d: rng.normal(c, 0.03, DEFAULT_SEEDS) for d, c in centres.items()}
        fixed = {d: rng.normal(c, 0.03, DEFAULT_SEEDS) for d, c in centres.items()}
        result = compare_settings(
            tuned, fixed, tuned_verdict=compare(tuned), fixed_verdict=compare(fixed), naive_loss=0.55
        )
        changed += result.changed is True
    assert _at_most(changed, REPS // 2, 0.05), changed / (REPS // 2)


@pytest.mark.parametrize("seeds", [1, 2, 3, 5])
@pytest.mark.parametrize("depths", [2, 3])
def test_fewer_than_six_seeds_never_name_a_winner(seeds, depths):
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
    # One failed run in the better depth costs it that run's comparisons and widens its spread (the test no longer
    # assumes one spread), and it is still counted; the worse depth is never called better.
    wins = 0
    for _ in range(REPS // 4):
        better, worse = rng.normal(-3, 1, n), rng.normal(0, 1, n)
        better[0] = math.nan
        pair = compare({1: better, 2: worse}).pairs[0]
        assert pair.n_a == n and pair.difference is None
        assert pair.p_a_better == pytest.approx(((better[1:, None] < worse[None, :]).sum()) / n**2)
        assert pair.better != 2
        wins += pair.better == 1
    assert wins > 0.2 * (REPS // 4)
