"""Tuned against one fixed setting: the tuning gain and whether the conclusion changed, on known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from stacktune.search.verdict.stats import compare
from stacktune.search.verdict.versus_fixed import DEFAULT_MARGIN, compare_settings, naive_sentence

NOISE = [0.0, 0.004, -0.003, 0.002, -0.001, 0.003, -0.004, -0.001]  # 8 seeds of seed-to-seed noise


def _around(centre: float, scale: float = 1.0) -> list[float]:
    return [centre + scale * v for v in NOISE]


def _settings(tuned, fixed, **options):
    return compare_settings(tuned, fixed, tuned_verdict=compare(tuned), fixed_verdict=compare(fixed), **options)


def test_the_tuning_gain_is_the_welch_difference_of_fixed_minus_tuned():
    tuned = {1: _around(0.20), 2: _around(0.21)}
    fixed = {1: _around(0.40, 2.0), 2: _around(0.30, 3.0)}
    result = _settings(tuned, fixed)
    for gain in result.gains:
        expected = st.ttest_ind(fixed[gain.depth], tuned[gain.depth], equal_var=False).confidence_interval(0.95)
        assert gain.gain == pytest.approx(np.mean(fixed[gain.depth]) - np.mean(tuned[gain.depth]))
        assert gain.ci.as_list() == pytest.approx([expected.low, expected.high])


def test_opposite_calls_change_the_conclusion():
    tuned = {1: _around(0.30), 2: _around(0.20)}
    fixed = {1: _around(0.30), 2: _around(0.40)}
    result = _settings(tuned, fixed)
    assert result.changed is True and result.needed_seeds is None
    assert result.reasons == [
        "tuned, depth 2 is shown better than depth 1; with the fixed setting, depth 1 is shown better than depth 2"
    ]
    assert result.sentence.startswith("the conclusion changed (tuned, depth 2 is shown better")


def test_a_significant_flip_changes_the_conclusion_without_opposite_calls():
    # Tuned, 2 is a little better than 1 (not called); fixed, 1 is clearly better: the difference flips.
    tuned = {1: _around(0.300, 4.0), 2: _around(0.294, 4.0)}
    fixed = {1: _around(0.30, 4.0), 2: _around(0.36, 4.0)}
    result = _settings(tuned, fixed)
    assert compare(tuned).pairs[0].better is None and compare(fixed).pairs[0].better == 1
    assert result.changed is True and "significant" in result.reasons[0]


def test_a_difference_that_holds_within_the_margin_is_the_same_conclusion():
    tuned = {1: _around(0.30), 2: _around(0.32), 3: _around(0.35)}
    fixed = {d: [v + 0.1 for v in losses] for d, losses in tuned.items()}
    result = _settings(tuned, fixed)
    assert result.changed is False and result.margin == pytest.approx(DEFAULT_MARGIN * 0.30, rel=0.01)
    assert all(row["equivalent"] for row in result.interactions) and len(result.interactions) == 3
    assert "±0.03" in result.reasons[0] and "10%" in result.reasons[0]
    assert result.sentence.startswith("the conclusion is the same (every difference between two depths")


def test_too_few_seeds_to_tell_says_how_many_would_settle_it():
    rng = np.random.default_rng(3)
    tuned = {1: rng.normal(0.31, 0.03, 8), 2: rng.normal(0.30, 0.03, 8)}
    fixed = {1: rng.normal(0.40, 0.03, 8), 2: rng.normal(0.42, 0.03, 8)}
    result = _settings(tuned, fixed)
    assert result.changed is None and result.needed_seeds is not None and result.needed_seeds > 8
    assert f"about {result.needed_seeds} seeds per configuration would settle it" in result.reasons[-1]
    assert result.sentence.startswith("whether the conclusion changed cannot be told yet (the settings")


def test_a_fixed_setting_that_loses_to_the_naive_forecast_while_tuning_beats_it_changes_the_conclusion():
    tuned = {1: _around(0.10), 2: _around(0.11), 3: _around(0.12)}
    fixed = {1: _around(0.40), 2: _around(0.35), 3: _around(0.45)}
    result = _settings(tuned, fixed, naive_loss=0.25)
    assert result.fixed_loses_to_naive is True and result.tuned_beats_naive is True and result.changed is True
    assert "every depth does worse than the naive forecast" in " ".join(result.reasons)
    sentence = naive_sentence(fixed, "persistence", 0.25, "64 units per layer, lr 0.001")
    assert "every depth does worse than the naive persistence forecast" in sentence and "0.35 to 0.45" in sentence
    # The naive forecast between them at one depth only: no such claim.
    mixed = _settings(tuned, {1: _around(0.20), 2: _around(0.35), 3: _around(0.45)}, naive_loss=0.25)
    assert mixed.fixed_loses_to_naive is False


def test_one_depth_cannot_change_a_comparison_and_failed_runs_are_worst():
    result = _settings({1: _around(0.1)}, {1: _around(0.2)})
    assert result.changed is None and "one depth" in result.reasons[0]
    failed = _settings({1: _around(0.1), 2: _around(0.2)}, {1: [math.inf] * 8, 2: _around(0.3)}, naive_loss=0.15)
    assert failed.fixed_loses_to_naive is True
    json.dumps(failed.to_dict(), allow_nan=False)


def test_input_errors():
    with pytest.raises(ValueError, match="confidence"):
        _settings({1: _around(0.1)}, {1: _around(0.2)}, confidence=1.5)
    with pytest.raises(ValueError, match="margin"):
        _settings({1: _around(0.1)}, {1: _around(0.2)}, margin=-0.1)


def test_the_same_order_with_differences_of_another_size_is_said_so():
    tuned = {1: _around(0.20), 2: _around(0.30), 3: _around(0.40)}
    fixed = {1: _around(0.50), 2: _around(0.90), 3: _around(1.60)}
    result = _settings(tuned, fixed)
    assert result.changed is None and result.needed_seeds is None
    assert "both settings order the depths alike by mean test loss (1, 2, 3)" in result.reasons[-1]
