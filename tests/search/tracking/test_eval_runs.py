"""Evaluation runs read back on resume: each finished retraining is found again by its job's key, replicate search
and data origin included, on a real MLflow store (Ray Tune's callback methods called directly)."""

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


def test_finished_retrainings_are_found_again_by_depth_kind_rank_seed_replicate_and_origin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root lands in the test's folder
    client = store.client(f"sqlite:///{tmp_path}/mlflow.db")
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
    jobs = []
    for origin in (1, 2, 3):
        for replicate in (1, 2):
            jobs.append(
                {"depth": 2, "kind": "tuned", "rank": 0, "seed": 1000, "replicate": replicate, "origin": origin}
            )
        jobs.append({"depth": 1, "kind": "fixed", "rank": 0, "seed": 1001, "origin": origin})
    for number, job in enumerate(jobs):
        job["config"] = config
        metrics = {"val_loss": 0.5, "test_loss": 1.0 + number, "params": 10, "epochs": 2, "train_seconds": 0.1}
        runs.on_trial_complete(0, [], FinishedJob(f"t{number}", {"job": job}, metrics))
    writer.flush()
    kept = ended_eval_runs(client, tree.experiment_id, tree.depth_runs, tree.replicate_runs)
    assert sorted(kept) == sorted(job_key(job) for job in jobs)
    assert [kept[job_key(job)]["test_loss"] for job in jobs] == [1.0 + n for n in range(len(jobs))]
    logged = client.search_runs([tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_EVAL}'")
    names = sorted(r.info.run_name for r in logged)
    assert "d2-rep2-best-1-o3" in names and "d1-fixed-2-o1" in names
