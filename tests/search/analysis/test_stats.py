"""Depth verdicts and intervals on made-up losses whose answers are known."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats as st

from stacktune.search.analysis import stats as stats_module
from stacktune.search.analysis.stats import (
    DEFAULT_SEEDS,
    Interval,
    Pair,
    Verdict,
    compare,
    difference_ci,
    mean_ci,
    min_seeds,
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


def test_mean_ci_is_the_t_interval():
    values = [1.0, 2.0, 3.0, 4.5]
    mean, ci = mean_ci(values, confidence=0.9, seed=3)
    expected = st.ttest_1samp(values, 0.0).confidence_interval(0.9)
    assert mean == pytest.approx(2.625)
    assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high))
    assert mean_ci([0.3]) == (0.3, Interval(0.3, 0.3))
    mean, ci = mean_ci([0.7, 0.7, 0.7])
    assert (mean, ci.low, ci.high) == pytest.approx((0.7, 0.7, 0.7))


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
    assert difference_ci([1.0, 1.0, 1.0], [2.0, 2.0]) == (-1.0, Interval(-1.0, -1.0))


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


# ----------------------------------------------------------------------------- the test behind the verdict


@pytest.mark.parametrize("case", range(4))
def test_p_value_is_scipys_exact_permutation_test(case):
    """Ties and failed runs included: the p-value is the one scipy gets by enumerating every split."""
    rng = np.random.default_rng(case)
    x = np.round(rng.normal(0.0, 1.0, 5 + case % 2), 0)
    y = np.round(rng.normal(1.0, 1.0, 6), 0)
    x[0], y[-1] = math.inf, math.inf
    if case >= 2:
        y[0] = math.inf

    def auc(a, b, axis):
        return ((a[..., :, None] < b[..., None, :]) + 0.5 * (a[..., :, None] == b[..., None, :])).mean(axis=(-1, -2))

    expected = st.permutation_test(
        (x, y), auc, permutation_type="independent", vectorized=True, n_resamples=100_000, alternative="two-sided"
    )
    pair = compare({1: x.tolist(), 2: y.tolist()}).pairs[0]
    assert pair.p_a_better == pytest.approx(expected.statistic)
    assert pair.p_a_better == pytest.approx(_auc(x, y))
    assert pair.p_value == pytest.approx(expected.pvalue, rel=1e-12)


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
    pair = compare({1: a, 2: b}).pairs[0]
    assert pair.p_adjusted < 0.05 and 0.75 <= pair.p_a_better < 0.9 and pair.better == 1
    strict = compare({1: a, 2: b}, gamma=0.9)
    assert strict.pairs[0].better is None and strict.winner is None


def test_min_seeds_values_and_consistency_with_decidable():
    # 2 / C(2n, n) must fall below 0.05 / (m * looks): n = 4 gives 0.029, 5 gives 0.0079, 6 gives 0.0022.
    assert [min_seeds(k) for k in range(1, 8)] == [1, 4, 5, 5, 6, 6, 6]
    assert min_seeds(2, looks=2) == 5
    assert min_seeds(2, confidence=0.99) == 5
    assert min_seeds(6, confidence=0.99, looks=3) == 8
    rng = np.random.default_rng(0)
    for k in range(2, 7):
        n = min_seeds(k)
        short = compare({d: rng.normal(0, 1, n - 1) for d in range(k)})
        enough = compare({d: rng.normal(0, 1, n) for d in range(k)})
        assert not any(p.decidable for p in short.pairs)
        assert all(p.decidable for p in enough.pairs)
    with pytest.raises(ValueError, match="n_depths"):
        min_seeds(0)
    with pytest.raises(ValueError, match="looks"):
        min_seeds(3, looks=0)


def test_decidable_with_unequal_counts():
    # 8 runs against 2: at best p = 2 / C(10, 2) = 0.044, enough alone but not after Holm over 3 pairs.
    assert compare({1: _shifted(0.0), 2: [0.9, 1.0]}).pairs[0].decidable
    verdict = compare({1: _shifted(0.0), 2: _shifted(1.0), 3: [0.9, 1.0]})
    assert {(p.a, p.b): p.decidable for p in verdict.pairs} == {(1, 2): True, (1, 3): False, (2, 3): False}
    assert verdict.winner is None and verdict.undecided and verdict.needed_seeds == 5
    assert verdict.summary == (
        "2 to 8 seeds per depth cannot decide between depths 1, 2 and 3; at least 5 per depth are needed"
    )


def test_default_seeds_can_decide_up_to_six_depths():
    assert all(min_seeds(k) <= DEFAULT_SEEDS for k in range(2, 7))


# ----------------------------------------------------------------------------- outcomes and their wording


def test_clear_winner():
    verdict = compare({1: _shifted(0.5), 2: _shifted(0.0), 6: _shifted(0.3)})
    assert (verdict.winner, verdict.tied, verdict.undecided, verdict.needed_seeds) == (2, [2], False, None)
    assert verdict.summary == "depth 2 wins"
    pairs = _by_pair(verdict)
    assert sorted(pairs) == [(1, 2), (1, 6), (2, 6)]
    p12 = pairs[(1, 2)]
    assert p12.better == 2 and p12.p_a_better == 0.0 and p12.p_value == pytest.approx(2 / math.comb(16, 8))
    assert p12.p_adjusted == pytest.approx(3 * p12.p_value)
    assert p12.difference == pytest.approx(0.5) and p12.difference_ci.low > 0.4
    assert (p12.n_a, p12.n_b, p12.decidable) == (8, 8, True)
    assert pairs[(2, 6)].better == 2 and pairs[(2, 6)].p_a_better == 1.0 and pairs[(2, 6)].difference_ci.high < 0
    assert "0.75" in verdict.rule and "Holm" in verdict.rule and "Bouthillier" in verdict.rule


def test_two_tie_for_first():
    verdict = compare({1: BASE, 2: _shifted(1.0), 3: BASE[::-1]})
    assert (verdict.winner, verdict.tied, verdict.undecided) == (None, [1, 3], False)
    assert {k: p.better for k, p in _by_pair(verdict).items()} == {(1, 2): 1, (1, 3): None, (2, 3): 3}
    assert verdict.summary == "depths 1 and 3 tie for first"


def test_three_tie_for_first():
    verdict = compare({4: _shifted(1.0), 3: BASE[::-1], 1: BASE, 2: sorted(BASE)})
    assert (verdict.winner, verdict.tied) == (None, [1, 2, 3])
    assert verdict.summary == "depths 1, 2 and 3 tie for first"


def test_partial_order_is_not_called_a_tie():
    # 1 beats 2 and 2 beats 3, but 1 against 3 (one run of 1 failed badly, one run of 3 is the best of all) is open.
    losses = {
        1: [0.13, 0.03, 0.29, -0.16, 0.11, 0.19, 0.08, 3.03],
        2: [1.01, 1.06, 1.02, 1.1, 0.99, 0.88, 1.03, 0.99],
        3: [2.0, 2.11, -1.27, 1.52, 2.65, 1.47, 2.17, 1.75],
    }
    verdict = compare(losses)
    assert {k: p.better for k, p in _by_pair(verdict).items()} == {(1, 2): 1, (1, 3): None, (2, 3): 2}
    assert (verdict.winner, verdict.tied, verdict.undecided) == (None, [1], False)
    assert verdict.summary == (
        "depth 1 leads but is not shown better than depth 3 (depth 1 beats depth 2; depth 2 beats depth 3)"
    )


def test_unbeaten_depths_that_do_not_tie_for_first():
    # Depth 3 spreads over both: nothing is shown about it, while 1 beats 2.
    losses = {1: BASE, 2: _shifted(1.0), 3: list(np.linspace(0.0, 2.0, 8))}
    verdict = compare(losses)
    assert {k: p.better for k, p in _by_pair(verdict).items()} == {(1, 2): 1, (1, 3): None, (2, 3): None}
    assert (verdict.winner, verdict.tied) == (None, [1, 3])
    assert verdict.summary == "no depth wins: depths 1 and 3 are unbeaten (depth 1 beats depth 2)"


def test_cycle_wording():
    summary = stats_module._summary([1, 2, 3], None, [1, 2, 3], {1: [2], 2: [3], 3: [1]}, None, [8, 8, 8])
    assert summary == "no depth is unbeaten (depth 1 beats depth 2; depth 2 beats depth 3; depth 3 beats depth 1)"


def test_nothing_shown():
    verdict = compare({1: BASE, 2: _shifted(0.002, BASE[::-1]), 6: _shifted(-0.003)})
    assert (verdict.winner, verdict.tied, verdict.undecided, verdict.needed_seeds) == (None, [1, 2, 6], False, None)
    assert verdict.summary == "no depth is shown better than another"
    same = compare({6: BASE, 1: BASE, 2: BASE})
    assert all(
        p.better is None and p.difference == 0.0 and p.p_a_better == 0.5 and p.p_value == 1.0 for p in same.pairs
    )


@pytest.mark.parametrize(("seeds", "needed", "words"), [(1, 4, "1 seed"), (2, 4, "2 seeds"), (3, 4, "3 seeds")])
def test_too_few_seeds_is_undecided(seeds, needed, words):
    verdict = compare({1: _shifted(0.0, BASE[:seeds]), 2: _shifted(5.0, BASE[:seeds])})
    assert (verdict.winner, verdict.undecided, verdict.needed_seeds) == (None, True, needed)
    assert verdict.tied == [1, 2]
    assert verdict.summary == f"{words} cannot decide between depths 1 and 2; at least {needed} are needed"
    assert not verdict.pairs[0].decidable and verdict.pairs[0].p_a_better == 1.0


def test_single_depth_wins_alone():
    verdict = compare({3: [0.2, 0.3]})
    assert (verdict.winner, verdict.tied, verdict.pairs, verdict.undecided) == (3, [3], [], False)
    assert verdict.summary == "depth 3 wins, being the only depth compared"


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


def test_to_dict_is_plain_json():
    losses = {np.int64(1): np.array(_shifted(0.5)), np.int64(2): _shifted(0.0)[:-1] + [math.inf], 3: [0.4]}
    for verdict in (compare(losses), compare({1: _shifted(0.5), 2: _shifted(0.0)}), compare({1: [1.0], 2: [2.0]})):
        data = verdict.to_dict()
        assert _plain_json(data)
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert set(data) == {"winner", "tied", "undecided", "pairs", "rule", "needed_seeds", "summary"}
        for pair in data["pairs"]:
            assert set(pair) == {
                "a",
                "b",
                "better",
                "p_a_better",
                "p_value",
                "p_adjusted",
                "difference",
                "difference_ci",
                "n_a",
                "n_b",
                "decidable",
            }
    data = compare({1: _shifted(0.5), 2: _shifted(0.0)}).to_dict()
    assert data["winner"] == 2 and data["tied"] == [2] and data["pairs"][0]["difference_ci"][0] > 0


def test_same_inputs_same_results():
    rng = np.random.default_rng(7)
    losses = {d: rng.normal(1.0, 0.1, 9) for d in (1, 2, 3)}
    assert compare(losses, seed=5) == compare(losses, seed=5) == compare(losses, seed=6)
    assert mean_ci(losses[1], seed=5) == mean_ci(losses[1], seed=6)
    assert isinstance(compare(losses), Verdict) and isinstance(compare(losses).pairs[0], Pair)


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


def test_looks_make_the_rule_stricter_and_are_described():
    losses = {1: _shifted(0.0, BASE[:5]), 2: _shifted(1.0, BASE[:5])}
    assert compare(losses).winner == 1  # p = 2 / 252 = 0.0079
    verdict = compare(losses, looks=10)
    assert verdict.winner is None and verdict.undecided and verdict.needed_seeds == min_seeds(2, looks=10) == 6
    assert "10 looks" in verdict.rule


def test_many_runs_use_seeded_random_splits():
    """Past about 50 + 50 runs the p-value comes from 9,999 random splits: reproducible per seed, close across seeds."""
    rng = np.random.default_rng(2)
    losses = {1: rng.normal(0.0, 1.0, 60), 2: rng.normal(0.4, 1.0, 60), 3: rng.normal(0.0, 1.0, 60) - 5.0}
    first, again, other = compare(losses, seed=1), compare(losses, seed=1), compare(losses, seed=2)
    assert first == again
    assert compare(losses, seed=-1) == compare(losses, seed=-1)
    assert first.pairs[0].p_value != other.pairs[0].p_value
    assert first.pairs[0].p_value == pytest.approx(other.pairs[0].p_value, abs=0.02)
    # The z approximation of the rank-sum test, for scale.
    z = st.mannwhitneyu(losses[1], losses[2], method="asymptotic").pvalue
    assert first.pairs[0].p_value == pytest.approx(z, abs=0.02)
    # Complete separation reaches the smallest randomized p-value, 2 / 10,000, and stays decidable.
    assert first.pairs[1].p_value == pytest.approx(2 / 10_000) and first.pairs[1].decidable
    assert first.winner == 3
