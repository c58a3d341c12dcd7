"""Scoring over several data origins: each (configuration, seed) pooled over the origins, per-origin figures, the
naive baselines pooled alike, and a verdict that a hard test period cannot sway (checked by simulation)."""

import math

import numpy as np

from stacktune.search.evaluation.scoring import origin_agreement, origin_figures, pool_origins
from stacktune.search.verdict import baselines, stats
from stacktune.search.verdict.comparison import Comparison, Verdict


def _job(depth, seed, origin, kind="tuned", rank=0, replicate=None):
    job = {"depth": depth, "kind": kind, "rank": rank, "seed": seed, "config": {}, "origin": origin}
    if replicate is not None:
        job["replicate"] = replicate
    return job


def test_runs_are_pooled_per_configuration_and_seed_weighted_by_each_origins_test_windows():
    weights = [10, 30]
    results = [
        (_job(1, 0, 1), {"test_loss": 1.0, "val_loss": 0.5, "params": 7}),
        (_job(1, 0, 2), {"test_loss": 3.0, "val_loss": 1.5, "params": 7}),
        (_job(1, 1, 2), {"test_loss": 2.0, "val_loss": 1.0}),
        (_job(1, 1, 1), {"val_loss": 1.0}),  # failed at origin 1
        (_job(2, 0, 1, kind="fixed"), {"test_loss": 4.0, "val_loss": 2.0}),  # origin 2 never ran
    ]
    pooled = {(j["depth"], j["kind"], j["seed"]): m for j, m in pool_origins(results, weights)}
    assert all("origin" not in job for job, _ in pool_origins(results, weights))
    assert math.isclose(pooled[(1, "tuned", 0)]["test_loss"], (10 * 1.0 + 30 * 3.0) / 40)
    assert math.isclose(pooled[(1, "tuned", 0)]["val_loss"], 1.0) and pooled[(1, "tuned", 0)]["params"] == 7
    assert pooled[(1, "tuned", 0)]["origin_test_losses"] == [1.0, 3.0]
    assert "test_loss" not in pooled[(1, "tuned", 1)]  # a failure at any origin fails the run as a whole
    assert "test_loss" not in pooled[(2, "fixed", 0)] and pooled[(2, "fixed", 0)]["origin_test_losses"][1] == math.inf
    # Without origins, results come back as they are.
    plain = [({"depth": 1, "kind": "tuned", "rank": 0, "seed": 0}, {"test_loss": 1.0})]
    assert pool_origins(plain, [5]) is plain and pool_origins(plain, [5, 5]) is plain


def test_naive_baselines_are_pooled_like_the_runs():
    a = [{"kind": "persistence", "loss": 1.0, "samples": 10}, {"kind": "seasonal_naive", "loss": 2.0, "samples": 10}]
    b = [{"kind": "persistence", "loss": 3.0, "samples": 30}]
    (found,) = baselines.pooled([a, b], [10, 30])
    assert found["kind"] == "persistence" and math.isclose(found["loss"], 2.5) and found["samples"] == 40
    assert found["origin_losses"] == [1.0, 3.0]  # seasonal naive could not be scored at origin 2: left out
    assert baselines.pooled([a], [10]) is a


def _comparison(depths):
    return Comparison.from_dict(
        {
            "search": "s",
            "experiment_id": "1",
            "mlflow_run_id": "r",
            "dataset": {"name": "x"},
            "task": "regression",
            "trials_per_depth": 1,
            "depths": [{"depth": d, "evaluated_rank": 0} for d in depths],
        }
    )


def test_each_origin_has_its_own_means_leader_and_the_agreement_counts_origins():
    comparison = _comparison([1, 2])
    losses = {
        (1, 1): [1.0, 1.2],
        (2, 1): [2.0, 2.2],
        (1, 2): [5.0, 5.0],
        (2, 2): [4.0, 4.4],
        (1, 3): [1, 1],
        (2, 3): [3, 3],
    }
    results = [
        (_job(d, s, o), {"test_loss": v, "val_loss": 0.1 * o})
        for (d, o), values in losses.items()
        for s, v in enumerate(values)
    ]
    results.append((_job(1, 0, 1, rank=1), {"test_loss": 0.0}))  # a runner-up the verdict does not use
    meta = [{"number": n, "of": 3, "kind": "rolling", "sizes": {"test": 5}} for n in (1, 2, 3)]
    naive = [{"kind": "persistence", "loss": 0.5}, None, {"kind": "persistence", "loss": 0.7}]
    table, val = origin_figures(comparison, results, meta, naive)
    assert [o["leader"] for o in table] == [1, 2, 1]
    assert math.isclose(table[0]["depths"][0]["tuned"], 1.1) and table[0]["depths"][0]["fixed"] is None
    assert table[1]["naive"] is None and table[2]["naive"] == {"kind": "persistence", "loss": 0.7}
    assert math.isclose(val[2][1], 0.2)
    verdict = Verdict.from_dict({"pairs": [{"a": 1, "b": 2, "better": 1}]})
    assert origin_agreement(table, verdict) == [{"a": 1, "b": 2, "better": 1, "leader": 1, "agree": 2, "of": 3}]
    comparison.origins = table
    again = Comparison.from_dict(comparison.to_dict())
    assert again.to_dict() == comparison.to_dict() and again.origins[1].depths[1].tuned == 4.2


def test_a_hard_test_period_does_not_sway_the_verdict_when_depths_are_alike():
    """Simulation with a known answer: two depths alike, three origins whose losses differ fivefold (one period much
    harder than the others) and an origin-by-seed noise; the pooled verdict names a depth in at most 5% of runs."""
    rng = np.random.default_rng(0)
    weights = [12, 11, 12]
    period = np.array([1.0, 5.0, 1.5])
    reps, called = 300, 0
    for rep in range(reps):
        runs = {}
        for depth in (1, 2):
            per_origin = period * np.exp(rng.normal(0, 0.25, size=(8, 3)))  # 8 seeds x 3 origins
            runs[depth] = list(per_origin @ np.array(weights) / sum(weights))
        verdict = stats.compare(runs, confidence=0.95, seed=rep)
        called += verdict.winner is not None or any(p.better is not None for p in verdict.pairs)
    assert called / reps <= 0.06, called / reps
