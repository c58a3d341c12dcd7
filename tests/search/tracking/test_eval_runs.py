"""Evaluation runs: each seed of a job is logged as it reports, once, and read back on resume by its key, replicate
search and data origin included, on a real MLflow store (Ray Tune's callback methods called directly)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stacktune.search.spec.convert import baseline_config
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.tracking import store, tags
from stacktune.search.tracking.buffer import BufferedWriter
from stacktune.search.tracking.eval_runs import EvalRuns, ended_eval_runs, job_key
from stacktune.search.tracking.run_tree import open_run_tree


@dataclass
class FinishedJob:
    """What EvalRuns reads of a Ray Tune Trial."""

    trial_id: str
    config: dict
    last_result: dict = field(default_factory=dict)


def test_finished_retrainings_are_found_again_by_depth_kind_rank_seed_replicate_and_origin(
    tmp_path, monkeypatch, mlflow_store
):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root lands in the test's folder
    client = store.client(mlflow_store(tmp_path))
    spec = SearchSpec.model_validate(
        {"name": "keys", "dataset": {"name": "sine"}, "depths": [1, 2], "trials_per_depth": 1, "replicates": 2}
    )
    tree = open_run_tree(client, spec, resume=False)
    writer = BufferedWriter(client)
    runs = EvalRuns(
        writer=writer,
        experiment_id=tree.experiment_id,
        search="keys",
        depth_runs=tree.depth_runs,
        replicate_runs=tree.replicate_runs,
    )
    config = baseline_config(spec, 2).model_dump(mode="json")
    bundles = []
    for origin in (1, 2, 3):
        for replicate in (1, 2):
            bundles.append({"depth": 2, "kind": "tuned", "rank": 0, "seeds": [1000, 1001], "replicate": replicate})
            bundles[-1]["origin"] = origin
        bundles.append({"depth": 1, "kind": "fixed", "rank": 0, "seeds": [1000, 1001], "origin": origin})
    jobs = []
    for number, bundle in enumerate(bundles):
        bundle["config"] = config
        trial = FinishedJob(f"t{number}", {"job": bundle})
        for seed in bundle["seeds"]:
            job = {**{k: v for k, v in bundle.items() if k != "seeds"}, "seed": seed}
            metrics = {"seed": seed, "val_loss": 0.5, "test_loss": 1.0 + len(jobs), "params": 10, "epochs": 2}
            runs.on_trial_result(0, [], trial, {**metrics, "train_seconds": 0.1})
            runs.on_trial_result(0, [], trial, {**metrics, "test_loss": 99.0})  # a retried trial reports again
            jobs.append(job)
        trial.last_result = metrics
        runs.on_trial_complete(0, [], trial)
    writer.flush()
    kept = ended_eval_runs(client, tree.experiment_id, tree.depth_runs, tree.replicate_runs)
    assert sorted(kept) == sorted(job_key(job) for job in jobs)
    assert [kept[job_key(job)]["test_loss"] for job in jobs] == [1.0 + n for n in range(len(jobs))]
    assert [job for job, _ in runs.results] == jobs  # each retraining once, as it reported
    logged = client.search_runs([tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'")
    names = sorted(r.info.run_name for r in logged)
    assert len(names) == len(jobs)
    assert "d2-rep2-best-1-o3" in names and "d1-fixed-2-o1" in names


def test_a_job_that_fails_part_way_keeps_its_reported_seeds_and_fails_the_rest(tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    client = store.client(mlflow_store(tmp_path))
    spec = SearchSpec.model_validate(
        {"name": "part", "dataset": {"name": "sine"}, "depths": [1], "trials_per_depth": 1}
    )
    tree = open_run_tree(client, spec, resume=False)
    writer = BufferedWriter(client)
    runs = EvalRuns(writer=writer, experiment_id=tree.experiment_id, search="part", depth_runs=tree.depth_runs)
    bundle = {"depth": 1, "kind": "tuned", "rank": 0, "seeds": [1000, 1001, 1002]}
    bundle["config"] = baseline_config(spec, 1).model_dump(mode="json")
    trial = FinishedJob("t0", {"job": bundle})
    first = {"seed": 1000, "val_loss": 0.5, "test_loss": 0.7, "params": 10, "epochs": 2, "train_seconds": 0.1}
    runs.on_trial_result(0, [], trial, first)
    diverged = {**first, "seed": 1001, "val_loss": float("inf"), "state": "diverged"}
    del diverged["test_loss"]
    runs.on_trial_result(0, [], trial, diverged)
    trial.last_result = diverged
    runs.on_trial_error(0, [], trial)
    writer.flush()
    assert [(job["seed"], metrics.get("test_loss")) for job, metrics in runs.results] == [
        (1000, 0.7),
        (1001, None),
        (1002, None),
    ]
    logged = client.search_runs([tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'")
    status = {int(r.data.tags[tags.SEED]): r.info.status for r in logged}
    assert status == {1000: "FINISHED", 1001: "FAILED", 1002: "FAILED"}
    kept = ended_eval_runs(client, tree.experiment_id, tree.depth_runs)
    assert "test_loss" in kept[(1, "tuned", 0, 1000, 1, 1)] and "test_loss" not in kept[(1, "tuned", 0, 1002, 1, 1)]
