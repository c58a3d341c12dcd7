"""Replicate searches in the verdict: each search of a depth is one observation, so the variation between searches
counts, and the evaluation keeps every search's own figures and says how many searches agree with each call."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from benchmarks.verdict import draw_replicates
from stacktune.search.evaluation import aggregate, plan_jobs
from stacktune.search.publishing.report import write_report
from stacktune.search.spec.convert import evaluation_seeds, to_train_config
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.verdict.comparison import Comparison, DepthEntry
from stacktune.search.verdict.replicates import replicate_means, replicate_test
from stacktune.search.verdict.stats import compare


def _called(verdict) -> bool:
    return verdict.winner is not None or any(p.better is not None for p in verdict.pairs)


@pytest.mark.slow  # a simulation of 150 searches
def test_a_search_effect_as_large_as_the_seed_effect_breaks_the_run_level_test_but_not_the_replicate_level_one():
    # Two equal depths, 3 searches each, 8 seeds: a lucky search makes all 8 of its runs look good together.
    g = np.random.default_rng(7)
    reps = 150
    by_search = by_run = 0
    for _ in range(reps):
        losses, groups = draw_replicates(g, 2, 3, 8)
        by_search += _called(compare(losses, replicates=groups))
        by_run += _called(compare(losses))
    # 5% nominal (about 4% measured): 0.09 is three binomial SDs above it at 150 replications.
    assert by_search / reps <= 0.09
    assert by_run / reps >= 0.09  # counting every run as independent calls far more than 5% (about 16%)


@pytest.mark.slow  # a simulation of 100 searches
def test_a_depth_two_sds_better_wins_with_enough_searches():
    g = np.random.default_rng(11)
    wins = 0
    for _ in range(100):
        losses, groups = draw_replicates(g, 2, 5, 8, shift=2.0)
        wins += compare(losses, replicates=groups).winner == 1
    assert wins >= 85  # about 96% at 5 searches (benchmarks/verdict.py)


def test_a_failed_retraining_makes_its_search_the_worst_and_never_a_win():
    means = replicate_means(np.array([1.0, 1.0, 2.0, math.inf]), [1, 1, 2, 2])
    assert means[0] == 1.0 and means[1] == math.inf
    x, y = np.array([0.1, 0.2, math.inf]), np.array([1.0, 1.1, 1.2])
    test = replicate_test(x, y, np.random.default_rng(0), 0.95)
    assert test.p_x_better == 1.0 and test.p_y_better == 1.0  # no call either way on an infinite mean


def test_the_replicate_level_verdict_says_so_and_its_trend_uses_search_means():
    g = np.random.default_rng(3)
    losses, groups = draw_replicates(g, 3, 4, 8, shift=3.0)
    verdict = compare(losses, replicates=groups)
    assert "search is one observation" in verdict.rule
    assert verdict.needed_seeds is None
    assert all(p.n_a == 4 and p.n_b == 4 for p in verdict.pairs)  # searches, not runs
    assert verdict.trend is not None and verdict.trend.depths == [1, 2, 3]
    with pytest.raises(ValueError, match="losses but"):
        compare({1: [1.0, 2.0], 2: [1.0, 2.0]}, replicates={1: [1, 2], 2: [1, 2, 3]})


def test_one_search_a_depth_is_the_run_level_verdict():
    g = np.random.default_rng(5)
    losses = {1: g.normal(0, 1, 8), 2: g.normal(0, 1, 8)}
    ones = {d: [1] * 8 for d in losses}
    assert compare(losses, replicates=ones).to_dict() == compare(losses).to_dict()


# ----------------------------------------------------------------------------- the evaluation with replicates


def _spec() -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": "replicated",
            "dataset": {"name": "sine"},
            "depths": [1, 2],
            "trials_per_depth": 2,
            "replicates": 3,
            "evaluation": {"seeds": 6},
            "seed": 2,
        }
    )


def _config(spec: SearchSpec, depth: int, units: int):
    params = {f"units_{i}": units for i in range(depth)}
    params.update(lr=1e-3, dropout=0.0, weight_decay=0.0, batch_size=32)
    return to_train_config(spec, params, depth=depth)


def test_every_replicate_search_is_retrained_and_the_fixed_setting_once_per_depth():
    spec = _spec()
    candidates = {(d, r): [_config(spec, d, 8 * r)] for d in spec.depths for r in (1, 2, 3)}
    jobs = plan_jobs(spec, candidates, evaluation_seeds(spec))
    tuned = [j for j in jobs if j["kind"] == "tuned"]
    fixed = [j for j in jobs if j["kind"] == "fixed"]
    assert len(tuned) == 2 * 3 * 6 and len(fixed) == 2 * 6
    assert {(j["depth"], j["replicate"]) for j in tuned} == set(candidates)
    assert all("replicate" not in j for j in fixed)
    assert {j["config"]["model"]["units"][0] for j in tuned if j["replicate"] == 2} == {16}


def test_aggregate_keeps_each_search_and_counts_the_searches_that_agree(tmp_path):
    spec = _spec()
    candidates = {(d, r): [_config(spec, d, 8 * r)] for d in spec.depths for r in (1, 2, 3)}
    jobs = plan_jobs(spec, candidates, evaluation_seeds(spec))
    seeds = evaluation_seeds(spec)
    # Depth 1's searches end at 1.0, 1.1 and 2.5; depth 2's at 2.0, 2.1, 2.2: depth 1 is lower in searches 1 and 2.
    centre = {(1, 1): 1.0, (1, 2): 1.1, (1, 3): 2.5, (2, 1): 2.0, (2, 2): 2.1, (2, 3): 2.2}

    def test_loss(job):
        if job["kind"] == "fixed":
            return 3.0 + 0.01 * seeds.index(job["seed"])
        return centre[(job["depth"], job["replicate"])] + 0.01 * seeds.index(job["seed"])

    results = [(j, {"val_loss": 0.5, "test_loss": test_loss(j), "params": 100, "epochs": 2}) for j in jobs]
    random.Random(1).shuffle(results)
    comparison = Comparison(
        search=spec.name,
        experiment_id="0",
        mlflow_run_id="run",
        dataset={"name": "sine"},
        task="regression",
        trials_per_depth=2,
        depths=[DepthEntry(depth=d, replicates=[{"replicate": r} for r in (1, 2, 3)]) for d in spec.depths],
    )
    aggregate(spec, comparison, results)
    one = comparison.entry(1)
    assert len(one.test_losses) == 18 and one.seeds == seeds * 3
    assert [r.test_loss_mean for r in one.replicates] == pytest.approx([1.025, 1.125, 2.525])
    assert one.test_loss_ci_method == "t-replicates"
    low, high = one.test_loss_ci95
    assert low < one.test_loss_mean < high and one.test_loss_mean == pytest.approx((1.025 + 1.125 + 2.525) / 3)
    (pair,) = comparison.agreement
    assert (pair.a, pair.b, pair.of, pair.leader, pair.agree) == (1, 2, 3, 1, 2)
    # Three searches a side with one far off: no call, whatever 18 runs against 18 would suggest.
    assert comparison.verdict.winner is None
    assert pair.better is None
    written = comparison.to_dict()
    assert written["agreement"] == [{"a": 1, "b": 2, "better": None, "leader": 1, "agree": 2, "of": 3}]
    assert Comparison.from_dict(written).to_dict() == written

    # The report shows every search and the agreement, and counts the search's randomness as accounted for.
    comparison.replicates = 3
    comparison.evaluation = {"seeds": seeds, "confidence": 0.95, "replicates": 3}
    for entry in comparison.depths:
        for found in entry.replicates:
            found.best_config = candidates[(entry.depth, found.replicate)][0].model_dump(mode="json")
    paths = write_report(comparison, tmp_path)
    report = paths[0].read_text()
    assert "## Replicate searches" in report
    assert "| 1 | 3 |" in report and "| 2 | 2 |" in report  # depth, search
    assert "depth 1 is lower than (not called) depth 2 in 2 of 3 replicate searches" in report
    assert "Accounted for: the search's own randomness. Each depth was searched 3 times" in report
    assert "3 times over (independent searches)" in report
    assert any(p.name == "test_loss_by_depth.png" for p in paths)
