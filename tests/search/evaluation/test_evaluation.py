"""Evaluation's planning and aggregation: which retrainings run, and what their scores add to the comparison.

The verdict's rule lives in verdict/stats.py; these tests assert only what any sound rule gives.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from stacktune.search.evaluation import aggregate, bundle_jobs, mark_incomplete, plan_jobs, seed_rounds
from stacktune.search.spec.convert import baseline_config, evaluation_seeds, to_train_config
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.verdict.comparison import Comparison, DepthEntry, Verdict
from stacktune.search.verdict.stats import compare, min_seeds


def _spec(**changes) -> SearchSpec:
    data = {
        "name": "eval-test",
        "dataset": {"name": "sine"},
        "depths": [1, 2],
        "trials_per_depth": 2,
        "evaluation": {"seeds": 3},
        "seed": 4,
    }
    data.update(changes)
    return SearchSpec.model_validate(data)


def _config(spec: SearchSpec, depth: int, units: int, lr: float):
    params = {f"units_{i}": units for i in range(depth)}
    params.update(lr=lr, dropout=0.0, weight_decay=0.0, batch_size=32)
    return to_train_config(spec, params, depth=depth)


def _candidates(spec: SearchSpec) -> dict:
    # Depth 1 has two candidates (top_k 2), depth 2 one.
    return {1: [_config(spec, 1, 16, 1e-3), _config(spec, 1, 32, 3e-3)], 2: [_config(spec, 2, 8, 2e-3)]}


def _comparison(spec: SearchSpec) -> Comparison:
    return Comparison(
        search=spec.name,
        experiment_id="0",
        mlflow_run_id="search-run",
        dataset={"name": "sine"},
        task="regression",
        trials_per_depth=spec.trials_per_depth,
        depths=[DepthEntry(depth=d) for d in spec.depths],
    )


# ----------------------------------------------------------------------------- plan_jobs


def test_plan_jobs_gives_one_job_per_depth_candidate_and_seed_plus_the_fixed_setting():
    spec = _spec()
    seeds = evaluation_seeds(spec)
    assert len(seeds) == 3
    candidates = _candidates(spec)

    jobs = plan_jobs(spec, candidates, evaluation_seeds(spec))

    expected = Counter()
    for depth, configs in candidates.items():
        for rank in range(len(configs)):
            for seed in seeds:
                expected[(depth, "tuned", rank, seed)] += 1
        for seed in seeds:
            expected[(depth, "fixed", 0, seed)] += 1
    assert Counter((j["depth"], j["kind"], j["rank"], j["seed"]) for j in jobs) == expected
    assert len(jobs) == (2 + 1 + 1 + 1) * 3
    for job in jobs:
        assert set(job) == {"depth", "kind", "rank", "seed", "config"}
        if job["kind"] == "tuned":
            assert job["config"] == candidates[job["depth"]][job["rank"]].model_dump(mode="json")
        else:
            assert job["config"] == baseline_config(spec, job["depth"]).model_dump(mode="json")
        assert len(job["config"]["model"]["units"]) == job["depth"]


def test_plan_jobs_without_a_baseline_plans_only_the_tuned_candidates():
    spec = _spec(baseline=None)
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    assert {j["kind"] for j in jobs} == {"tuned"}
    assert len(jobs) == (2 + 1) * 3
    assert sorted({j["seed"] for j in jobs}) == evaluation_seeds(spec)


def test_plan_jobs_uses_the_specs_seeds():
    spec = _spec(seed=7, evaluation={"seeds": 2})
    jobs = plan_jobs(spec, {1: [_config(spec, 1, 16, 1e-3)], 2: []}, evaluation_seeds(spec))
    assert sorted({j["seed"] for j in jobs}) == evaluation_seeds(spec)
    # A depth without candidates still gets the fixed setting.
    assert {(j["depth"], j["kind"]) for j in jobs} == {(1, "tuned"), (1, "fixed"), (2, "fixed")}


def test_plan_jobs_with_evaluation_off_plans_nothing():
    spec = _spec(evaluation={"seeds": 0})
    assert plan_jobs(spec, _candidates(spec), []) == []


@pytest.mark.parametrize("slots", [1, 2, 5, 40])
def test_bundles_hold_each_retraining_once_and_keep_every_slot_busy(slots):
    spec = _spec(evaluation={"seeds": 8, "origins": 2})
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    bundles = bundle_jobs(jobs, slots)
    unbundled = [
        {**{k: v for k, v in bundle.items() if k != "seeds"}, "seed": seed}
        for bundle in bundles
        for seed in bundle["seeds"]
    ]
    key = lambda job: sorted((k, str(v)) for k, v in job.items())  # noqa: E731
    assert sorted(map(key, unbundled)) == sorted(map(key, jobs))  # every retraining once, nothing else
    configs = len({tuple(key({k: v for k, v in j.items() if k != "seed"})) for j in jobs})
    assert configs == 5 * 2  # 5 configurations at 2 origins
    sizes = [len(b["seeds"]) for b in bundles]
    if slots <= configs:  # one job per configuration, all its seeds in it
        assert len(bundles) == configs and set(sizes) == {8}
    else:  # a wider cluster: each configuration's seeds split evenly, a job for every slot
        assert len(bundles) >= slots and max(sizes) - min(sizes) <= 1


def test_a_round_of_kept_retrainings_bundles_only_the_seeds_still_owed():
    spec = _spec(evaluation={"seeds": 4})
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    owed = [j for j in jobs if not (j["depth"] == 1 and j["kind"] == "fixed" and j["seed"] != jobs[0]["seed"])]
    bundles = bundle_jobs(owed, 1)
    fixed = [b for b in bundles if b["depth"] == 1 and b["kind"] == "fixed"]
    assert [b["seeds"] for b in fixed] == [[jobs[0]["seed"]]]


# ----------------------------------------------------------------------------- aggregate


def _results(spec: SearchSpec, jobs: list[dict], *, val, test, params=1000) -> list[tuple[dict, dict]]:
    """(job, metrics) for every job, in a shuffled order; `val(job)`, `test(job)` give its losses."""
    results = [
        (job, {"val_loss": val(job), "test_loss": test(job), "params": params + job["depth"], "epochs": 5})
        for job in jobs
    ]
    random.Random(0).shuffle(results)
    return results


def _seed_index(spec: SearchSpec, seed: int) -> int:
    return evaluation_seeds(spec).index(seed)


def test_aggregate_fills_each_depth_with_the_candidate_best_on_validation():
    spec = _spec()
    seeds = evaluation_seeds(spec)
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))

    def val(job):  # depth 1's second candidate is better on validation
        return 0.5 if (job["depth"], job["rank"]) == (1, 1) else 0.9

    def test(job):
        base = {"tuned": 1.0, "fixed": 2.0}[job["kind"]] + 0.1 * job["depth"] + 0.05 * job["rank"]
        return base + 0.01 * _seed_index(spec, job["seed"])

    comparison = _comparison(spec)
    val_loss = aggregate(spec, comparison, _results(spec, jobs, val=val, test=test))
    assert val_loss == {1: pytest.approx(0.5), 2: pytest.approx(0.9)}

    one, two = comparison.entry(1), comparison.entry(2)
    assert one.evaluated_rank == 1
    assert one.evaluated_config == _candidates(spec)[1][1].model_dump(mode="json")
    assert two.evaluated_rank == 0
    assert two.evaluated_config is None  # the best trial's own config: nothing to add
    for entry, rank in ((one, 1), (two, 0)):
        assert entry.seeds == seeds  # sorted by seed, whatever order the results came in
        expected = [1.0 + 0.1 * entry.depth + 0.05 * rank + 0.01 * i for i in range(len(seeds))]
        assert entry.test_losses == pytest.approx(expected)
        assert entry.test_loss_mean == pytest.approx(sum(expected) / len(expected))
        low, high = entry.test_loss_ci95
        assert low <= entry.test_loss_mean <= high
        assert entry.test_accuracy_mean is None

        fixed = entry.fixed
        assert fixed.config == baseline_config(spec, entry.depth).model_dump(mode="json")
        assert fixed.params == 1000 + entry.depth and isinstance(fixed.params, int)
        fixed_expected = [2.0 + 0.1 * entry.depth + 0.01 * i for i in range(len(seeds))]
        assert fixed.test_losses == pytest.approx(fixed_expected)
        assert fixed.test_loss_mean == pytest.approx(sum(fixed_expected) / len(fixed_expected))
        assert fixed.test_loss_ci95[0] <= fixed.test_loss_mean <= fixed.test_loss_ci95[1]

    for verdict in (comparison.verdict, comparison.fixed_verdict):
        assert isinstance(verdict, Verdict)
        assert verdict.winner in (None, 1, 2)
        assert verdict.tied and set(verdict.tied) <= {1, 2}
        if verdict.winner is not None:
            assert verdict.winner in verdict.tied
    assert isinstance(comparison.conclusion_changed, bool)
    assert isinstance(comparison.conclusion, str) and comparison.conclusion.strip()
    assert re.search(r"\bdepths?\b", comparison.conclusion)
    assert re.search(r"\b[12]\b", comparison.conclusion)

    # What aggregate adds is plain JSON and reads back the same.
    again = Comparison.from_dict(comparison.to_dict())
    assert again.to_dict() == comparison.to_dict()


def test_identical_losses_name_no_winner():
    spec = _spec()
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    comparison = _comparison(spec)

    aggregate(spec, comparison, _results(spec, jobs, val=lambda j: 0.7, test=lambda j: 1.5))

    for verdict in (comparison.verdict, comparison.fixed_verdict):
        assert verdict.winner is None
        assert sorted(verdict.tied) == [1, 2]
    assert comparison.conclusion_changed is False
    assert comparison.conclusion.strip()
    for depth in (1, 2):
        assert re.search(rf"\b{depth}\b", comparison.conclusion)
    assert comparison.entry(1).evaluated_rank in (0, 1)
    assert comparison.entry(1).test_losses == [1.5, 1.5, 1.5]
    assert comparison.entry(1).test_loss_mean == pytest.approx(1.5)


def test_the_candidate_chosen_does_not_depend_on_the_order_results_arrive_in():
    spec = _spec(baseline=None)
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    results = [(job, {"val_loss": 0.7, "test_loss": 1.0 + 0.1 * job["rank"], "params": 10}) for job in jobs]
    chosen = []
    for order in (results, results[::-1]):
        comparison = _comparison(spec)
        aggregate(spec, comparison, order)
        chosen.append((comparison.entry(1).evaluated_rank, comparison.entry(1).test_losses))
    assert chosen[0] == chosen[1]


def test_without_a_baseline_there_is_no_fixed_setting():
    spec = _spec(baseline=None)
    jobs = plan_jobs(spec, _candidates(spec), evaluation_seeds(spec))
    comparison = _comparison(spec)

    aggregate(spec, comparison, _results(spec, jobs, val=lambda j: 0.7, test=lambda j: 1.0 + 0.1 * j["depth"]))

    assert all(e.fixed is None for e in comparison.depths)
    assert comparison.fixed_verdict is None and comparison.conclusion_changed is None
    assert comparison.verdict is not None and comparison.conclusion.strip()
    written = comparison.to_dict()
    assert "fixed_verdict" not in written and all("fixed" not in d for d in written["depths"])


def test_classification_accuracy_is_averaged():
    spec = _spec(baseline=None)
    jobs = plan_jobs(spec, {1: [_config(spec, 1, 16, 1e-3)], 2: [_config(spec, 2, 16, 1e-3)]}, evaluation_seeds(spec))
    results = [
        (
            job,
            {
                "val_loss": 0.4,
                "test_loss": 0.6,
                "params": 50,
                "test_accuracy": 0.5 + 0.1 * _seed_index(spec, job["seed"]),
            },
        )
        for job in jobs
    ]
    comparison = _comparison(spec)
    aggregate(spec, comparison, results)
    for entry in comparison.depths:
        assert entry.test_accuracy_mean == pytest.approx(0.6)


def test_a_depth_without_results_is_left_unevaluated():
    spec = _spec(baseline=None)
    jobs = [j for j in plan_jobs(spec, _candidates(spec), evaluation_seeds(spec)) if j["depth"] == 2]
    comparison = _comparison(spec)

    aggregate(spec, comparison, _results(spec, jobs, val=lambda j: 0.7, test=lambda j: 1.0))

    assert comparison.entry(1).test_loss_mean is None and comparison.entry(1).seeds is None
    assert comparison.entry(2).seeds == evaluation_seeds(spec)
    assert comparison.verdict is not None and set(comparison.verdict.tied) <= {2}


def test_failed_runs_count_as_the_worst_loss_and_are_never_dropped():
    spec = _spec(baseline=None, evaluation={"seeds": 8})
    jobs = plan_jobs(spec, {1: [_config(spec, 1, 16, 1e-3)], 2: [_config(spec, 2, 8, 2e-3)]}, evaluation_seeds(spec))
    # Depth 2 is better whenever it trains, but diverges on every other seed (no test loss).
    results = []
    for job in jobs:
        metrics = {"val_loss": 0.5, "params": 10, "epochs": 3, "test_loss": 1.0 if job["depth"] == 1 else 0.5}
        if job["depth"] == 2 and _seed_index(spec, job["seed"]) % 2:
            del metrics["test_loss"]
            metrics["state"] = "diverged"
        results.append((job, metrics))
    comparison = _comparison(spec)
    aggregate(spec, comparison, results)

    two = comparison.entry(2)
    assert two.failed_runs == 4 and len(two.test_losses) == 8 and two.test_losses.count(None) == 4
    assert two.test_loss_mean == pytest.approx(0.5)  # the mean of the runs that trained
    assert comparison.entry(1).failed_runs == 0
    # Dropping the failures would make depth 2 look better on every seed; counted as worst, it is not.
    assert comparison.verdict.winner != 2
    json.dumps(comparison.to_dict(), allow_nan=False)


def test_no_results_add_nothing():
    spec = _spec()
    comparison = _comparison(spec)
    before = comparison.to_dict()
    aggregate(spec, comparison, [])
    assert comparison.to_dict() == before
    assert comparison.verdict is None and comparison.conclusion is None
    assert all(e.test_loss_mean is None and e.fixed is None for e in comparison.depths)


def _sequential_winner_rate(spec: SearchSpec, shift: float, reps: int, seed: int) -> tuple[int, list[int]]:
    """How often `seeds: auto` names a winner, looking after every round, for two depths `shift` SDs apart."""
    rounds = seed_rounds(spec)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        a, b = rng.normal(0.0, 1.0, rounds[-1]), rng.normal(shift, 1.0, rounds[-1])
        for n in rounds:
            verdict = compare({1: a[:n], 2: b[:n]}, looks=len(rounds))
            if verdict.winner is not None:
                hits += verdict.winner == 1 if shift else 1
                break
    return hits, rounds


@pytest.mark.slow
def test_sequential_rounds_keep_the_false_winner_rate_across_every_look():
    spec = _spec(evaluation={"seeds": "auto", "max_seeds": 20})
    reps = 500
    hits, rounds = _sequential_winner_rate(spec, 0.0, reps, seed=11)
    assert len(rounds) >= 3
    # At most 5% of A/A searches name a winner, allowing for Monte Carlo error (one-sided binomial test at 1%).
    assert stats.binomtest(hits, reps, 0.05, alternative="greater").pvalue >= 0.01, hits / reps


@pytest.mark.slow
def test_sequential_rounds_find_a_real_difference():
    spec = _spec(evaluation={"seeds": "auto", "max_seeds": 20})
    reps = 300
    hits, _ = _sequential_winner_rate(spec, 2.0, reps, seed=12)
    assert stats.binomtest(hits, reps, 0.90, alternative="less").pvalue >= 0.01, hits / reps


def test_seed_rounds_are_one_round_of_the_count_or_growing_rounds_with_auto():
    assert seed_rounds(_spec()) == [3]
    rounds = seed_rounds(_spec(evaluation={"seeds": "auto", "max_seeds": 20}))
    assert rounds[-1] == 20 and rounds == sorted(set(rounds)) and len(rounds) >= 2
    # The first round can already decide a pair at the level each round is tested at.
    assert rounds[0] >= min_seeds(2, looks=len(rounds))
    assert seed_rounds(_spec(evaluation={"seeds": "auto", "max_seeds": 3})) == [3]


def test_later_rounds_get_new_seeds():
    spec = _spec(evaluation={"seeds": "auto"})
    first, second = evaluation_seeds(spec, 4), evaluation_seeds(spec, 3, start=4)
    assert not set(first) & set(second) and second == [first[-1] + 1 + i for i in range(3)]


# ----------------------------------------------------------------------------- an incomplete evaluation


def test_an_evaluation_with_jobs_missing_says_so_and_calls_nothing():
    spec = _spec(baseline=None)
    comparison = _comparison(spec)
    # Depth 1 far better on the seeds that ran: a complete evaluation would name it.
    results = [
        ({"depth": d, "kind": "tuned", "rank": 0, "seed": s, "config": {}}, {"test_loss": 0.1 * d**3 + 0.001 * s})
        for d in (1, 2)
        for s in range(3)
    ]
    aggregate(spec, comparison, results)
    mark_incomplete(comparison, missing=2, planned=8)
    data = json.loads(json.dumps(comparison.to_dict()))
    assert data["evaluation"]["missing"] == 2 and data["evaluation"]["planned"] == 8
    assert data["verdict"]["winner"] is None and data["verdict"]["undecided"] is True and data["verdict"]["tied"] == []
    assert "incomplete" in data["conclusion"] and "2 of 8" in data["conclusion"] and "--resume" in data["conclusion"]
    assert data["headline"] == data["conclusion"]
