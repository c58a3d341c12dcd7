"""A configuration's seeds retrained in one Ray Tune trial, as one batched model where that pays: each seed's test
loss is the one its own `fit` gives, each is logged as a run of its own, and the runs say which trained together
(a real search: local Ray, Optuna, an MLflow store)."""

from __future__ import annotations

import dataclasses

import pytest
from mlflow.tracking import MlflowClient

from stacktune.models import evaluate, fit
from stacktune.search import run_search
from stacktune.search.spec.convert import build
from stacktune.search.spec.loading import load_data
from stacktune.search.spec.schema import SearchSpec, TrainConfig
from stacktune.search.tracking import tags

pytestmark = pytest.mark.slow
SEEDS = 4


def _own_fit_losses(config: dict, seeds: list[int], data) -> list[float]:
    model_cfg, settings = build(TrainConfig.model_validate(config), data, threads=1)
    losses = []
    for seed in seeds:
        result = fit(model_cfg, data, dataclasses.replace(settings, seed=seed))
        losses.append(evaluate(result.model, data.test, task=data.task)["loss"])
    return losses


def test_seeds_trained_together_score_as_each_seeds_own_fit_and_are_logged_one_run_each(tmp_path, mlflow_store):
    raw = {
        "name": "together",
        "dataset": {"name": "sine", "length": 600, "window": 12},
        "depths": [1],
        "trials_per_depth": 2,
        "space": {"units": [8], "lr": [3e-3, 3e-2]},
        "train": {"epochs": 3, "batch_size": 32},
        "sampler": {"n_startup_trials": 2},
        "evaluation": {"seeds": SEEDS},
        "baseline": {"units": 32, "lr": 1e-2},  # wider than batching pays for: its seeds train one by one
        "resources": {"cpus_per_trial": 1},
    }
    uri = mlflow_store(tmp_path)
    comparison = run_search(raw, out=tmp_path / "runs", tracking_uri=uri)
    data = load_data(SearchSpec.model_validate(raw).dataset, base_dir=None)
    (entry,) = comparison.depths
    assert len(entry.seeds) == SEEDS
    # Batched or one by one, a seed's test loss is its own fit's (to float rounding).
    assert entry.test_losses == pytest.approx(_own_fit_losses(entry.best_config, entry.seeds, data), rel=1e-4)
    fixed = entry.fixed
    assert fixed.test_losses == pytest.approx(_own_fit_losses(fixed.config, entry.seeds, data), rel=1e-6)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'", max_results=100
    )
    by_kind = {
        kind: sorted(
            (int(r.data.tags[tags.SEED]), r.data.tags.get(tags.SEEDS_TOGETHER))
            for r in runs
            if r.data.tags[tags.EVAL_KIND] == kind
        )
        for kind in ("tuned", "fixed")
    }
    # 8 units over 4 seeds trained as one batched model; 32 units, one by one.
    assert by_kind["tuned"] == [(seed, str(SEEDS)) for seed in entry.seeds]
    assert by_kind["fixed"] == [(seed, None) for seed in entry.seeds]
    assert all(r.info.status == "FINISHED" for r in runs)
