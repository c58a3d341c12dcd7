"""Depth verdicts, trends and intervals on made-up losses whose answers are known."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats as st

from stacktune.search.verdict import stats as stats_module
from stacktune.search.verdict.stats import (
    DEFAULT_SEEDS,
    MIN_RUNS,
    Interval,
    Pair,
    Verdict,
    compare,
    difference_ci,
    mean_ci,
    mean_interval,
    min_seeds,
    trend,
)

BASE = [0.50, 0.52, 0.49, 0.51, 0.53, 0.48, 0.505, 0.515]  # 8 seeds of one depth, around 0.5


def _shifted(shift: float, values=BASE) -> list[float]:
    return [v + shift for v in values]


def _by_pair(verdict: Verdict) -> dict[tuple[int, int], Pair]:
    return {(p.a, p.b): p for p in verdict.pairs}


def _auc(x, y) -> float:
    return sum((xi < yj) + 0.5 * (xi == yj) for xi in x for yj in y) / (len(x) * len(y))


def _plain_json(value) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


# ----------------------------------------------------------------------------- intervals


def test_interval_as_list():
    assert Interval(0.25, 0.75).as_list() == [0.25, 0.75]
    assert Interval(0.25, 0.75, "t") == Interval(0.25, 0.75, "cox-lognormal")  # the method is a label


def test_mean_interval_is_the_t_interval_unless_every_loss_is_positive():
    for values in ([-1.0, 2.0, 3.0, 4.0], [-0.3, 0.1, 0.2, -0.1, 0.05], _shifted(-0.5)):
        mean, ci = mean_interval(values, confidence=0.9)
        expected = st.ttest_1samp(values, 0.0).confidence_interval(0.9)
        assert mean == pytest.approx(np.mean(values)) and ci.method == "t"
        assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high))
    assert mean_ci([0.3]) == (0.3, Interval(0.3, 0.3))
    mean, ci = mean_ci([0.7, 0.7, 0.7])
    assert (mean, ci.low, ci.high) == pytest.approx((0.7, 0.7, 0.7))


@pytest.mark.parametrize("values", [np.random.default_rng(4).lognormal(0.0, 1.0, 8), np.array(BASE)])
def test_mean_interval_is_coxs_for_positive_losses(values):
    mean, ci = mean_interval(values)
    logs = np.log(values)
    var, n = logs.var(ddof=1), values.size
    half = st.t.ppf(0.975, n - 1) * math.sqrt(var / n + var**2 / (2 * (n - 1)))
    assert ci.method == "cox-lognormal" and mean == pytest.approx(values.mean())
    assert (ci.low, ci.high) == pytest.approx(
        (math.exp(logs.mean() + var / 2 - half), math.exp(logs.mean() + var / 2 + half))
    )
    assert ci.low < mean < ci.high


def test_difference_ci_is_welch():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.normal(0.0, rng.uniform(0.1, 3.0), rng.integers(2, 12))
        b = rng.normal(0.5, rng.uniform(0.1, 3.0), rng.integers(2, 12))
        confidence = float(rng.uniform(0.6, 0.99))
        diff, ci = difference_ci(a, b, confidence=confidence)
        expected = st.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
        assert diff == pytest.approx(a.mean() - b.mean())
        assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high), rel=1e-9)


def test_difference_ci_edge_cases():
    assert difference_ci([1.0], [2.0, 3.0]) == (-1.5, Interval(-math.inf, math.inf))
    assert difference_ci([1.0, 2.0], [3.0]) == (-1.5, Interval(-math.inf, math.inf))
    assert difference_ci([1.0, 1.0], [3.0, 3.0]) == (-2.0, Interval(-2.0, -2.0))


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e-30, 1e30])
def test_any_finite_scale_gives_the_same_answer_scaled(scale):
    """At losses near the largest and smallest floats the intervals neither overflow to NaN nor collapse to a point,
    and comparison.json stays strict JSON; the tests see only ranks, so their answers do not move."""
    losses = {1: _shifted(0.0), 2: _shifted(0.05), 3: _shifted(0.02, BASE[::-1])}
    plain, scaled = compare(losses), compare({d: [v * scale for v in x] for d, x in losses.items()})
    assert (scaled.winner, scaled.best_set) == (plain.winner, plain.best_set)
    for p, q in zip(plain.pairs, scaled.pairs, strict=True):
        assert (q.p_value, q.p_a_better, q.better) == (p.p_value, p.p_a_better, p.better)
        assert q.difference == pytest.approx(p.difference * scale, rel=1e-9)
        assert q.difference_ci.as_list() == pytest.approx([v * scale for v in p.difference_ci.as_list()], rel=1e-9)
        assert q.difference_ci.low < q.difference_ci.high
    assert scaled.trend.slope == pytest.approx(plain.trend.slope * scale, rel=1e-9)
    json.dumps(scaled.to_dict(), allow_nan=False)
    mean, ci = mean_interval([v * scale for v in BASE])
    assert ci.method == "cox-lognormal" and ci.low < mean < ci.high and mean == pytest.approx(np.mean(BASE) * scale)


def test_differences_too_large_for_a_float_are_left_out_not_nan():
    verdict = compare({1: [-1.6e308, -1.5e308, -1.4e308] * 2, 2: [1.5e308, 1.6e308, 1.7e308] * 2})
    data = verdict.to_dict()
    json.dumps(data, allow_nan=False)
    assert verdict.winner == 1 and data["pairs"][0]["difference"] is None


def test_interval_input_errors():
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="nan"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="inf"):
        difference_ci([1.0, math.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence.*1.0"):
        mean_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="confidence.*0"):
        difference_ci([1.0, 2.0], [1.0, 2.0], confidence=0.0)


# ----------------------------------------------------------------------------- the pairwise test


def _reference_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """The logit Brunner-Munzel statistic from scipy's ranks, written out independently of the module."""
    nx, ny = x.size, y.size
    pooled = st.rankdata(np.concatenate([x, y]))
    place_x = pooled[:nx] - st.rankdata(x)  # runs of y below each run of x
    place_y = pooled[nx:] - st.rankdata(y)
    p = place_y.mean() / nx  # P(x beats y)
    var = max(place_x.var(ddof=1) / (nx * ny**2) + place_y.var(ddof=1) / (ny * nx**2), 1 / (4 * nx * ny) ** 2)
    edge = 0.5 / (nx * ny)
    p = min(max(p, edge), 1 - edge)
    return math.log(p / (1 - p)) * p * (1 - p) / math.sqrt(var)


@pytest.mark.parametrize("case", range(4))
def test_p_value_is_the_exact_studentized_permutation_test(case):
    """Ties and failed runs included: the p-value is what enumerating every split of the pooled runs gives."""
    rng = np.random.default_rng(case)
    x = np.round(rng.normal(0.0, 1.0, 6 + case % 2), 0)
    y = np.round(rng.normal(0.8, 2.0, 6), 0)
    x[0], y[-1] = math.inf, math.inf
    if case >= 2:
        y[0] = math.inf
    pooled = np.concatenate([x, y])
    observed = _reference_statistic(x, y)
    null = []
    for first in itertools.combinations(range(pooled.size), x.size):
        rest = [i for i in range(pooled.size) if i not in first]
        null.append(_reference_statistic(pooled[list(first)], pooled[rest]))
    null = np.array(null)
    greater = np.mean(null >= observed - 1e-9 * max(1, abs(observed)))
    less = np.mean(null <= observed + 1e-9 * max(1, abs(observed)))
    pair = compare({1: x.tolist(), 2: y.tolist()}).pairs[0]
    assert pair.p_a_better == pytest.approx(_auc(x, y))
    assert pair.p_value == pytest.approx(min(1.0, 2 * min(greater, less)), rel=1e-12)
    assert pair.p_a_better_ci.low <= pair.p_a_better <= pair.p_a_better_ci.high


def test_only_ranks_matter():
    rng = np.random.default_rng(9)
    x, y = rng.normal(0.0, 1.0, 8), rng.normal(1.0, 1.0, 8)
    plain = compare({1: x, 2: y}).pairs[0]
    squashed = compare({1: np.exp(x), 2: np.exp(y)}).pairs[0]
    assert (plain.p_value, plain.p_a_better, plain.p_a_better_ci) == (
        squashed.p_value,
        squashed.p_a_better,
        squashed.p_a_better_ci,
    )


def test_a_wider_depth_with_the_same_centre_is_not_called_worse():
    """The Mann-Whitney test would call this pair (its null is equal distributions): the spread differs, P does not."""
    narrow = [-0.02, -0.01, 0.0, 0.01, 0.02, -0.015, 0.015, 0.005]
    wide = [-5.0, -4.0, -3.0, -2.0, 2.0, 3.0, 4.0, 5.0]
    pair = compare({1: narrow, 2: wide}).pairs[0]
    assert pair.p_a_better == 0.5 and pair.better is None and pair.p_value > 0.5


def test_complete_separation_keeps_the_estimate_inside_its_interval():
    pair = compare({1: _shifted(0.0), 2: _shifted(1.0)}).pairs[0]
    assert pair.p_a_better == 1.0 and pair.p_a_better_ci.high == 1.0 and 0.8 < pair.p_a_better_ci.low < 1.0
    assert pair.p_value == pytest.approx(2 / math.comb(16, 8))


def test_p_adjusted_is_holm_over_all_pairs_times_looks():
    rng = np.random.default_rng(5)
    losses = {d: rng.normal(0.1 * d, 0.1, 7) for d in (1, 2, 3, 4)}
    pairs = compare(losses).pairs
    raw = sorted((p.p_value, i) for i, p in enumerate(pairs))
    m, running = len(pairs), 0.0
    holm = [0.0] * m
    for rank, (p, i) in enumerate(raw):
        running = max(running, min(1.0, (m - rank) * p))
        holm[i] = running
    assert [p.p_adjusted for p in pairs] == pytest.approx(holm)
    twice = compare(losses, looks=2).pairs
    assert [p.p_adjusted for p in twice] == pytest.approx([min(1.0, 2 * h) for h in holm])
    assert [p.p_value for p in twice] == [p.p_value for p in pairs]


def test_gamma_is_required_as_well_as_significance():
    # 20 against 20 with a small overlap: significant, P(1 beats 2) about 0.8.
    a = list(np.linspace(0.0, 1.0, 20))
    b = list(np.linspace(0.55, 1.55, 20))
    verdict = compare({1: a, 2: b})
    assert verdict.pairs[0].p_adjusted < 0.05 and 0.75 <= verdict.pairs[0].p_a_better < 0.9
    assert verdict.pairs[0].better == 1 and verdict.winner == 1
    strict = compare({1: a, 2: b}, gamma=0.9)
    assert strict.pairs[0].better is None and strict.winner is None and strict.best_set == [1, 2]


# ----------------------------------------------------------------------------- the set that may be best


def _closed_test_by_brute_force(q: dict[int, float], alpha: float) -> list[int]:
    """Every intersection of "d is one of the best" over every subset, tested by Bonferroni, as the definition."""
    depths = sorted(q)
    k = len(depths)
    rejected = {}
    for size in range(1, k + 1):
        for subset in itertools.combinations(depths, size):
            rejected[subset] = min(q[d] for d in subset) < alpha / (size * (k - 1))
    return [d for d in depths if not all(r for s, r in rejected.items() if d in s)]


def test_the_closed_test_shortcut_is_the_closed_test():
    rng = np.random.default_rng(11)
    for _ in range(400):
        k = int(rng.integers(2, 7))
        depths = list(range(1, k + 1))
        q = {
            d: float(v) for d, v in zip(depths, rng.choice([1.0, 0.5, 0.02, 0.009, 0.004, 0.001, 1e-4], k), strict=True)
        }
        assert stats_module._best_set(depths, q, 0.05) == _closed_test_by_brute_force(q, 0.05), q


def test_clear_winner():
    verdict = compare({1: _shifted(0.5), 2: _shifted(0.0), 6: _shifted(0.3)})
    assert (verdict.winner, verdict.best_set, verdict.tied, verdict.undecided) == (2, [2], [2], False)
    assert verdict.summary == "depth 2 wins" and verdict.needed_seeds is None
    pairs = _by_pair(verdict)
    assert sorted(pairs) == [(1, 2), (1, 6), (2, 6)]
    p12 = pairs[(1, 2)]
    assert p12.better == 2 and p12.p_a_better == 0.0 and p12.p_value == pytest.approx(2 / math.comb(16, 8))
    assert p12.difference == pytest.approx(0.5) and p12.difference_ci.low > 0.4
    assert (p12.n_a, p12.n_b, p12.decidable) == (8, 8, True)
    assert "0.75" in verdict.rule and "Brunner and Munzel" in verdict.rule and "closed test" in verdict.rule


def test_two_may_be_best():
    verdict = compare({1: BASE, 2: _shifted(1.0), 3: BASE[::-1]})
    assert (verdict.winner, verdict.best_set, verdict.undecided) == (None, [1, 3], False)
    assert {k: p.better for k, p in _by_pair(verdict).items()} == {(1, 2): 1, (1, 3): None, (2, 3): 3}
    assert verdict.summary == "depths 1 and 3 may be best (depth 2 is not)"


def test_a_depth_that_spreads_over_the_others_stays_in_the_set():
    # Depth 3 spreads over both: nothing is shown about it, while 1 beats 2.
    losses = {1: BASE, 2: _shifted(1.0), 3: list(np.linspace(0.0, 2.0, 8))}
    verdict = compare(losses)
    assert verdict.best_set == [1, 3] and verdict.winner is None


def test_nothing_shown():
    verdict = compare({1: BASE, 2: _shifted(0.002, BASE[::-1]), 6: _shifted(-0.003)})
    assert (verdict.winner, verdict.best_set, verdict.undecided, verdict.needed_seeds) == (None, [1, 2, 6], False, None)
    assert verdict.summary == "no depth is shown worse than the best"
    same = compare({6: BASE, 1: BASE, 2: BASE})
    assert all(
        p.better is None and p.difference == 0.0 and p.p_a_better == 0.5 and p.p_value == 1.0 for p in same.pairs
    )


@pytest.mark.parametrize("seeds", [1, 2, 3, 5])
def test_too_few_seeds_is_undecided(seeds):
    verdict = compare({1: _shifted(0.0, BASE[:seeds]), 2: _shifted(5.0, BASE[:seeds])})
    words = f"{seeds} seed{'s' if seeds > 1 else ''}"
    assert (verdict.winner, verdict.undecided, verdict.needed_seeds) == (None, True, MIN_RUNS)
    assert verdict.best_set == [1, 2]
    assert verdict.summary == f"{words} cannot decide between depths 1 and 2; at least {MIN_RUNS} are needed"
    assert not verdict.pairs[0].decidable and verdict.pairs[0].p_a_better == 1.0


def test_a_few_run_depth_against_many_runs_needs_one_run_more():
    many = _shifted(1.0, BASE * 2)
    assert compare({1: _shifted(0.0, BASE[:6]), 2: many}).undecided
    assert compare({1: _shifted(0.0, BASE[:7]), 2: many}).winner == 1
    assert compare({1: _shifted(0.0, BASE[:6]), 2: _shifted(1.0, BASE[:7])}).winner == 1


def test_min_seeds_values_and_consistency_with_decidable():
    assert [min_seeds(k) for k in range(1, 9)] == [1, 6, 6, 6, 6, 6, 6, 7]
    assert min_seeds(6, confidence=0.99, looks=3) == 8
    rng = np.random.default_rng(0)
    for k in range(2, 7):
        n = min_seeds(k)
        short = compare({d: rng.normal(0, 1, n - 1) for d in range(k)})
        enough = compare({d: np.arange(n) + 10.0 * d for d in range(k)})  # completely separated
        assert short.undecided and not any(p.decidable for p in short.pairs)
        assert enough.winner == 0 and not enough.undecided
    assert all(min_seeds(k) <= DEFAULT_SEEDS for k in range(2, 7))
    with pytest.raises(ValueError, match="n_depths"):
        min_seeds(0)
    with pytest.raises(ValueError, match="looks"):
        min_seeds(3, looks=0)


def test_single_depth_wins_alone():
    verdict = compare({3: [0.2, 0.3]})
    assert (verdict.winner, verdict.best_set, verdict.pairs, verdict.undecided) == (3, [3], [], False)
    assert verdict.summary == "depth 3 wins, being the only depth compared" and verdict.trend is None


def test_failed_runs_rank_worst_and_are_kept():
    finite = compare({1: _shifted(0.0), 2: _shifted(1.0)})
    failed = compare({1: _shifted(0.0), 2: _shifted(1.0)[:-1] + [math.inf]})
    assert failed.winner == 1 and failed.pairs[0].n_b == 8
    assert (failed.pairs[0].p_a_better, failed.pairs[0].p_value) == (
        finite.pairs[0].p_a_better,
        finite.pairs[0].p_value,
    )
    assert failed.pairs[0].difference is None and failed.pairs[0].difference_ci is None
    # A failed run of the better depth is its worst: NaN, inf and a huge finite loss rank the same.
    for bad in (math.inf, float("nan"), -math.inf):
        pair = compare({1: _shifted(0.0)[:-1] + [bad], 2: _shifted(1.0)}).pairs[0]
        assert pair.n_a == 8 and pair.p_a_better == pytest.approx(56 / 64)
    huge = compare({1: _shifted(0.0)[:-1] + [1e6], 2: _shifted(1.0)}).pairs[0]
    assert huge.p_value == compare({1: _shifted(0.0)[:-1] + [math.nan], 2: _shifted(1.0)}).pairs[0].p_value


def test_looks_make_the_rule_stricter_and_are_described():
    losses = {1: _shifted(0.0, BASE[:6]), 2: _shifted(1.0, BASE[:6])}
    assert compare(losses).winner == 1  # p = 2 / 924 = 0.0022
    verdict = compare(losses, looks=30)
    assert verdict.winner is None and verdict.undecided and verdict.needed_seeds == min_seeds(2, looks=30) == 7
    assert "30 looks" in verdict.rule


# ----------------------------------------------------------------------------- the trend


def test_trend_is_the_least_squares_slope_of_the_means_with_a_welch_interval():
    rng = np.random.default_rng(12)
    depths = [1, 2, 4, 6]
    losses = {d: rng.normal(1.0 - 0.05 * d, 0.02 * d, 8) for d in depths}
    result = trend(losses, confidence=0.9)
    means = np.array([losses[d].mean() for d in depths])
    assert result.slope == pytest.approx(np.polyfit(depths, means, 1)[0])
    w = (np.array(depths) - np.mean(depths)) / np.sum((np.array(depths) - np.mean(depths)) ** 2)
    parts = w**2 * np.array([losses[d].var(ddof=1) / 8 for d in depths])
    se, dof = math.sqrt(parts.sum()), parts.sum() ** 2 / np.sum(parts**2 / 7)
    half = st.t.ppf(0.95, dof) * se
    assert result.ci.as_list() == pytest.approx([result.slope - half, result.slope + half])
    assert result.p_value == pytest.approx(2 * st.t.sf(abs(result.slope) / se, dof))
    assert result.direction == "down" and result.depths == depths
    assert result.summary.startswith("adding layers lowers the test loss from depth 1 to 6: -0.05")


def test_a_flat_trend_is_not_called_and_two_depths_have_none():
    flat = trend({1: BASE, 2: BASE[::-1], 3: sorted(BASE)})
    assert flat.direction is None and flat.summary.startswith("no trend with depth is shown from depth 1 to 3")
    assert trend({1: BASE, 2: BASE}) is None and compare({1: BASE, 2: BASE}).trend is None
    up = compare({d: _shifted(0.1 * d) for d in (1, 2, 3)}).trend
    assert up.direction == "up" and up.slope == pytest.approx(0.1)


def test_the_trend_leaves_failed_runs_out_and_counts_them():
    losses = {1: _shifted(0.2), 2: _shifted(0.1)[:-1] + [math.inf], 3: _shifted(0.0)}
    result = trend(losses)
    assert result.failed_left_out == 1 and result.direction == "down"
    assert result.slope == pytest.approx(-0.1, abs=0.01)


# ----------------------------------------------------------------------------- records


def test_to_dict_is_plain_json():
    losses = {np.int64(1): np.array(_shifted(0.5)), np.int64(2): _shifted(0.0)[:-1] + [math.inf], 3: [0.4]}
    for verdict in (compare(losses), compare({1: _shifted(0.5), 2: _shifted(0.0)}), compare({1: [1.0], 2: [2.0]})):
        data = verdict.to_dict()
        assert _plain_json(data)
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert set(data) == {
            "winner",
            "tied",
            "best_set",
            "undecided",
            "pairs",
            "trend",
            "rule",
            "needed_seeds",
            "summary",
        }
        for pair in data["pairs"]:
            assert set(pair) == {
                "a",
                "b",
                "better",
                "p_a_better",
                "p_a_better_ci",
                "p_value",
                "p_adjusted",
                "difference",
                "difference_ci",
                "n_a",
                "n_b",
                "decidable",
            }
    data = compare({1: _shifted(0.5), 2: _shifted(0.0), 3: _shifted(0.7)}).to_dict()
    assert data["winner"] == 2 and data["best_set"] == [2] and data["pairs"][0]["difference_ci"][0] > 0
    assert set(data["trend"]) == {"slope", "ci", "p_value", "direction", "depths", "failed_left_out", "summary"}


def test_same_inputs_same_results():
    rng = np.random.default_rng(7)
    losses = {d: rng.normal(1.0, 0.1, 9) for d in (1, 2, 3)}
    assert compare(losses, seed=5) == compare(losses, seed=5)
    assert mean_ci(losses[1], seed=5) == mean_ci(losses[1], seed=6)
    assert isinstance(compare(losses), Verdict) and isinstance(compare(losses).pairs[0], Pair)


def test_many_runs_use_seeded_random_splits():
    """Past 20,000 splits the p-value comes from 9,999 random splits: reproducible per seed, close across seeds."""
    rng = np.random.default_rng(2)
    losses = {1: rng.normal(0.0, 1.0, 40), 2: rng.normal(0.4, 1.0, 40), 3: rng.normal(0.0, 1.0, 40) - 5.0}
    first, again, other = compare(losses, seed=1), compare(losses, seed=1), compare(losses, seed=2)
    assert first == again
    assert compare(losses, seed=-1) == compare(losses, seed=-1)
    assert first.pairs[0].p_value != other.pairs[0].p_value
    assert first.pairs[0].p_value == pytest.approx(other.pairs[0].p_value, abs=0.02)
    # Scipy's asymptotic Brunner-Munzel test, for scale.
    assert first.pairs[0].p_value == pytest.approx(st.brunnermunzel(losses[1], losses[2]).pvalue, abs=0.03)
    # Complete separation reaches the smallest randomized p-value, 2 / 10,000, and stays decidable.
    assert first.pairs[1].p_value == pytest.approx(2 / 10_000) and first.pairs[1].decidable
    assert first.winner == 3


class _Repeating(Mapping):
    """A mapping whose keys repeat, as a hand-built one might."""

    def __init__(self, items):
        self._items = items

    def __getitem__(self, key):
        return dict(self._items)[key]

    def __iter__(self):
        return iter(k for k, _ in self._items)

    def __len__(self):
        return len(self._items)

    def items(self):
        return list(self._items)


@pytest.mark.parametrize(
    ("losses", "options", "match"),
    [
        ({}, {}, "no depths"),
        ({1: [1.0], 2: []}, {}, "depth 2 is empty"),
        (_Repeating([(1, [1.0]), (np.int64(1), [2.0])]), {}, "depth 1 appears twice"),
        ({1.5: [1.0]}, {}, "1.5"),
        ({1: ["a"]}, {}, "'a'"),
        ({1: [1.0], 2: [2.0]}, {"confidence": 1.0}, "confidence.*1.0"),
        ({1: [1.0], 2: [2.0]}, {"confidence": -0.1}, "confidence.*-0.1"),
        ({1: [1.0], 2: [2.0]}, {"gamma": 0.4}, "gamma.*0.4"),
        ({1: [1.0], 2: [2.0]}, {"gamma": 1.0}, "gamma.*1.0"),
        ({1: [1.0], 2: [2.0]}, {"looks": 0}, "looks.*0"),
        ({1: [1.0], 2: [2.0]}, {"looks": 1.5}, "looks.*1.5"),
        ({1: [1.0], 2: [2.0]}, {"seed": 1.5}, "seed.*1.5"),
    ],
)
def test_compare_input_errors(losses, options, match):
    with pytest.raises(ValueError, match=match):
        compare(losses, **options)
