"""The compose cluster's parts as processes on 127.0.0.1: a search submitted to it runs on both Ray nodes.

A Ray head (dashboard and Jobs API, no CPUs) and a worker node, token authentication on, with an
`mlflow server` backed by PostgreSQL that serves the artifacts, and the Optuna studies in PostgreSQL:
what docker-compose.yml starts, one process each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import mlflow.pyfunc
import numpy as np
import optuna
import pytest
from conftest import LocalRayCluster, MlflowServer, postgres_database, run_cli, write_spec
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

NAME = "cluster"
DEPTHS, TRIALS = [1, 2], 3


class Cluster:
    """The running parts and the environment a user's shell would have to reach them."""

    def __init__(self, mlflow: MlflowServer, optuna_url: str, shared: str):
        self.mlflow, self.optuna_url = mlflow, optuna_url
        # What every head of this cluster is started with: the services that outlive a head.
        self.node_env = {
            "MLFLOW_TRACKING_URI": mlflow.uri,
            "STACKTUNE_OPTUNA_STORAGE": optuna_url,
            "STACKTUNE_STORAGE_PATH": shared,
            # Two trials staged at once, so both nodes' slots fill together: with Ray Tune's usual one, a loaded
            # machine can finish each short trial before the next is placed, and every trial lands on one node.
            "TUNE_MAX_PENDING_TRIALS_PG": "2",
        }
        self.rays: list[LocalRayCluster] = []

    @property
    def ray(self) -> LocalRayCluster:
        return self.rays[-1]

    def start_ray(self) -> None:
        """A head and a second node joined to it, one CPU each: two trials at a time means one on each."""
        self.rays.append(LocalRayCluster(env=self.node_env))
        self.ray.start(workers=1, dashboard=True, head_cpus=1)
        # The submitting user's shell: the cluster's token and nothing else of it.
        self.client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.ray.env["RAY_AUTH_TOKEN"]}

    def cli(self, *args: str, tmp_path, timeout: float = 600):
        return run_cli(*args, "--address", self.ray.dashboard, cwd=tmp_path, env=self.client_env, timeout=timeout)


@pytest.fixture
def cluster(tmp_path):
    with postgres_database() as mlflow_db, postgres_database() as optuna_db:
        cluster = Cluster(MlflowServer(tmp_path, backend=mlflow_db), optuna_db, str(tmp_path / "shared"))
        try:
            cluster.mlflow.start()
            cluster.start_ray()
            yield cluster
        finally:
            for ray in cluster.rays:
                ray.stop()
            cluster.mlflow.stop()


def _spec(tmp_path, **changes) -> str:
    return write_spec(
        tmp_path,
        **{
            "name": NAME,
            "depths": DEPTHS,
            "trials_per_depth": TRIALS,
            "train": {"epochs": 3, "batch_size": 32},
            "evaluation": {"seeds": 1},
            "resources": {"cpus_per_trial": 1, "max_concurrent": 2},
            **changes,
        },
    )


def test_a_submitted_search_trains_on_both_nodes_and_logs_everything_to_the_server(tmp_path, cluster, monkeypatch):
    done = cluster.cli("submit", _spec(tmp_path), "--wait", "--register", "cluster-lstm", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-4000:]
    job_id = done.stdout.splitlines()[0]
    assert job_id.startswith(f"stacktune-{NAME}-")
    # The job's log (the search's own table) came back through --wait.
    assert "depth" in done.stdout and "SUCCEEDED" in done.stderr

    client = MlflowClient(tracking_uri=cluster.mlflow.uri)
    experiment = client.get_experiment_by_name(NAME)
    # Artifacts go through the server to its own store, not to a folder on the node that ran the driver.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    trials = [r for r in runs if r.data.tags.get("stacktune.role") == "trial"]
    assert Counter(int(r.data.tags["stacktune.depth"]) for r in trials) == {d: TRIALS for d in DEPTHS}
    assert all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.tags["stacktune.node_id"] for r in trials} == set(cluster.ray.node_ids.values())

    (search,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
    assert search.info.status == "FINISHED"
    report = client.download_artifacts(search.info.run_id, "report/report.md", str(tmp_path))
    assert "depth" in open(report).read()
    best = next(r for r in trials if r.data.tags.get("stacktune.best") == "true")
    # The best trial's model and config, uploaded from the head through the server.
    assert {"model.pt", "config.yaml"} <= {a.path for a in client.list_artifacts(best.info.run_id)}
    # ... and as an MLflow Model, registered, that loads back through the server's artifact proxy.
    version = client.get_model_version("cluster-lstm", "1")
    assert version.tags["stacktune.search"] == NAME and version.tags["stacktune.verdict"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", cluster.mlflow.uri)
    model = mlflow.pyfunc.load_model("models:/cluster-lstm/1")
    window = model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"][1]
    assert model.predict(np.ones((3, window, 1), dtype=np.float32)).shape == (3, 1)

    # The studies live in the cluster's PostgreSQL, as compose keeps them.
    for depth in DEPTHS:
        study = optuna.load_study(study_name=f"{NAME}.depth-{depth}", storage=cluster.optuna_url)
        assert sum(t.state.is_finished() for t in study.get_trials()) == TRIALS

    listed = cluster.cli("jobs", "--json", tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = [j for j in json.loads(listed.stdout) if j["job"] == job_id]
    assert row["status"] == "SUCCEEDED" and row["search"] == NAME
    log = cluster.cli("logs", job_id, tmp_path=tmp_path)
    assert log.returncode == 0 and "depth" in log.stdout


def test_stop_interrupts_a_submitted_search_which_keeps_its_finished_trials(tmp_path, cluster):
    spec = _spec(tmp_path, name="stopped", trials_per_depth=50, train={"epochs": 40, "batch_size": 32})
    submitted = cluster.cli("submit", spec, "--json", tmp_path=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    answer = json.loads(submitted.stdout)
    assert answer["search"] == "stopped" and answer["status"] == "PENDING"
    job_id = answer["job"]
    client = MlflowClient(tracking_uri=cluster.mlflow.uri)
    _wait_for_a_finished_trial(cluster, "stopped", job_id, tmp_path)
    stopped = cluster.cli("stop", job_id, "--json", tmp_path=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"job": job_id, "status": "STOPPED"}
    listed = json.loads(cluster.cli("jobs", "--json", tmp_path=tmp_path).stdout)
    assert [j["status"] for j in listed if j["job"] == job_id] == ["STOPPED"]
    # Stopped as Ctrl-C stops a search: no run is left RUNNING and the log says how to resume.
    experiment = client.get_experiment_by_name("stopped")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "FINISHED" and r.data.tags.get("stacktune.role") == "trial" for r in runs)
    assert "--resume" in cluster.cli("logs", job_id, tmp_path=tmp_path).stdout


def _as_typed(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    """`stacktune ARGS` with exactly the Ray variables in `env` (none of the test's own), as a user's shell runs it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "-m", "stacktune.search.cli", *args],
        cwd=cwd, env={**base, "PYTHONUNBUFFERED": "1", **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_cluster_login_works_as_the_readme_and_ray_start_spell_it(tmp_path, cluster):
    token = cluster.ray.env["RAY_AUTH_TOKEN"]
    # RAY_ADDRESS=http://... RAY_AUTH_TOKEN=... stacktune ..., without RAY_AUTH_MODE: the token means token mode.
    for variable in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):  # the latter is what `ray start` prints
        listed = _as_typed(
            "jobs", "--json", env={variable: cluster.ray.dashboard, "RAY_AUTH_TOKEN": token}, cwd=tmp_path
        )
        assert listed.returncode == 0, f"{variable}: {listed.stderr[-3000:]}"
        assert isinstance(json.loads(listed.stdout), list)
    # Without the token the dashboard refuses, in one line.
    refused = _as_typed("jobs", env={"RAY_API_SERVER_ADDRESS": cluster.ray.dashboard}, cwd=tmp_path)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr[-3000:]


def test_cluster_commands_name_a_missing_job_and_a_wrong_address_in_one_line(tmp_path, cluster):
    missing = cluster.cli("logs", "stacktune-nothing-here", tmp_path=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        "error: no job 'stacktune-nothing-here' on this cluster (`stacktune jobs` lists them)"
    ]
    # A search that could never be scheduled (no node has a GPU) fails at once, not after waiting forever.
    gpu = cluster.cli(
        "submit", _spec(tmp_path, resources={"cpus_per_trial": 1, "gpus_per_trial": 0.25}), "--wait", tmp_path=tmp_path
    )
    assert gpu.returncode == 2, gpu.stderr[-3000:]
    assert "resources.gpus_per_trial: no node of the Ray cluster can hold a trial" in gpu.stdout


def _wait_for_a_finished_trial(cluster: Cluster, name: str, job_id: str, tmp_path, timeout: float = 300) -> None:
    client = MlflowClient(tracking_uri=cluster.mlflow.uri)

    def a_trial_finished() -> bool:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return False
        runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'")
        return any(r.data.tags.get("stacktune.role") == "trial" for r in runs)

    deadline = time.monotonic() + timeout
    while not a_trial_finished():
        assert time.monotonic() < deadline, cluster.cli("logs", job_id, tmp_path=tmp_path).stdout[-3000:]
        time.sleep(1)


def test_a_submitted_search_whose_head_is_lost_resumes_on_a_new_head_from_its_studies_and_runs(tmp_path, cluster):
    name, trials = "headloss", 4
    spec = _spec(tmp_path, name=name, trials_per_depth=trials, train={"epochs": 30, "batch_size": 32})
    submitted = cluster.cli("submit", spec, tmp_path=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    _wait_for_a_finished_trial(cluster, name, submitted.stdout.strip(), tmp_path)
    # The head dies at once with its search's driver and the job's folder, then the worker; the MLflow server,
    # the study database and the shared checkpoint folder live on, as compose's volumes and services do.
    cluster.ray.kill("head")
    cluster.ray.stop()
    done_before = sum(
        t.state.is_finished()
        for d in DEPTHS
        for t in optuna.load_study(study_name=f"{name}.depth-{d}", storage=cluster.optuna_url).get_trials()
    )
    assert 0 < done_before < trials * len(DEPTHS), "the head was lost too late to leave trials to resume"
    cluster.start_ray()

    resumed = cluster.cli("submit", spec, "--resume", "--wait", tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-3000:]
    for depth in DEPTHS:
        study = optuna.load_study(study_name=f"{name}.depth-{depth}", storage=cluster.optuna_url)
        counted = [t for t in study.get_trials() if t.state.is_finished() and not t.user_attrs.get("interrupted")]
        assert len(counted) == trials, [(t.state, t.user_attrs) for t in study.get_trials()]
    client = MlflowClient(tracking_uri=cluster.mlflow.uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    # One search run, the first one, finished by the new head; its trials: the budget, plus the cut-off ones.
    (search,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
    assert search.info.status == "FINISHED"
    trial_runs = [r for r in runs if r.data.tags.get("stacktune.role") == "trial"]
    finished = Counter(int(r.data.tags["stacktune.depth"]) for r in trial_runs if r.info.status == "FINISHED")
    assert finished == {d: trials for d in DEPTHS}
    assert all(r.info.status in ("FINISHED", "KILLED") for r in trial_runs)
