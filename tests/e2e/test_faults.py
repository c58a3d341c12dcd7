"""A search rides out faults of the machines around it: a Ray node that dies, an MLflow server that stops answering."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from conftest import LocalRayCluster, MlflowServer, StopAtRequest, finished_trials, kill_group, start_cli, write_spec
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    ray_cluster = LocalRayCluster()
    try:
        ray_cluster.start(workers=2)
        yield ray_cluster
    finally:
        ray_cluster.stop()


def _finished(journal: Path, name: str, depths) -> int:
    return finished_trials(JournalStorage(JournalFileBackend(str(journal))), name, depths)


def _trial_runs(uri: str, name: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("stacktune.role") == "trial"]


def _start_search(tmp_path, spec: str, uri: str, *, env: dict, extra=()) -> subprocess.Popen:
    return start_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", *extra, cwd=tmp_path, env=env)


def _wait_for(proc: subprocess.Popen, tmp_path, what: str, check, timeout: float = 300, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the search ended before {what}:\n{(tmp_path / 'stderr').read_text()[-3000:]}")
        time.sleep(every)
    pytest.fail(f"timed out waiting until {what}:\n{(tmp_path / 'stderr').read_text()[-3000:]}")


def test_a_trial_whose_node_dies_restarts_elsewhere_in_the_same_mlflow_run(tmp_path, cluster, mlflow_store):
    # Enough epochs (a few seconds a trial) that a trial can be caught halfway.
    depths, trials, epochs = [1, 2], 3, 60
    name = "nodes"
    spec = write_spec(
        tmp_path,
        name=name,
        depths=depths,
        trials_per_depth=trials,
        # Every epoch must run for the epoch-by-epoch checks below: no early stopping.
        train={"epochs": epochs, "batch_size": 32, "patience": None},
        resources={"cpus_per_trial": 1, "max_concurrent": 2},
    )
    uri = mlflow_store(tmp_path)
    journal = tmp_path / "out" / name / "optuna.journal"
    workers = {cluster.node_ids[n]: n for n in ("w0", "w1")}
    driver = _start_search(tmp_path, spec, uri, env=cluster.env, extra=("--address", cluster.address))
    try:
        _wait_for(
            driver, tmp_path, "a trial finished", lambda: journal.exists() and _finished(journal, name, depths) >= 1
        )

        def training_on_a_worker():
            # A trial in its first epochs on a worker node: killing that node cuts it off mid-training.
            for run in _trial_runs(uri, name):
                node = run.data.tags.get("stacktune.node_id")
                if run.info.status == "RUNNING" and node in workers and run.data.metrics.get("val_loss") is not None:
                    history = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "val_loss")
                    if len(history) <= epochs // 2:
                        return run
            return None

        victim = _wait_for(driver, tmp_path, "a trial was training on a worker node", training_on_a_worker, every=0.2)
        killed = workers[victim.data.tags["stacktune.node_id"]]
        cluster.kill(killed)
        driver.wait(timeout=600)
    finally:
        kill_group(driver)
    stderr = (tmp_path / "stderr").read_text()
    assert driver.returncode == 0, stderr[-4000:]
    # Read from the file: Ray's notice that the node died may reach the driver's stdout late.
    comparison = json.loads((tmp_path / "out" / name / "comparison.json").read_text())
    assert [sum(d["trials"].values()) for d in comparison["depths"]] == [trials] * len(depths)

    storage = JournalStorage(JournalFileBackend(str(journal)))
    for depth in depths:
        study = optuna.load_study(study_name=f"{name}.depth-{depth}", storage=storage)
        assert len(study.get_trials()) == trials and all(t.state.is_finished() for t in study.get_trials())

    runs = _trial_runs(uri, name)
    assert len(runs) == len(depths) * trials, "a restarted trial got a second MLflow run"
    assert Counter(int(r.data.tags["stacktune.depth"]) for r in runs) == {d: trials for d in depths}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len({r.info.run_name for r in runs}) == len(runs)

    (again,) = [r for r in runs if r.info.run_id == victim.info.run_id]
    assert again.data.tags["stacktune.restarts"] == "1", stderr[-3000:]
    assert again.info.status == "FINISHED" and again.data.tags["stacktune.state"] == "completed"
    survivor = next(n for n in ("w0", "w1") if n != killed)
    assert again.data.tags["stacktune.node_id"] == cluster.node_ids[survivor]
    assert again.data.tags["stacktune.restart_reason"], "the restart does not say why"
    steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(again.info.run_id, "val_loss")]
    # The restart continues from the trial's last saved state (every 5 epochs by default; exactness is
    # checked in tests/models), so at most one attempt's epochs repeat; the cut-off attempt's stay.
    assert set(steps) == set(range(1, epochs + 1)) and epochs <= len(steps) <= 2 * epochs


@pytest.fixture
def mlflow_server(tmp_path):
    server = MlflowServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_trials_train_on_while_mlflow_is_down_and_their_logs_arrive_once_it_is_back(
    tmp_path, mlflow_server, shared_ray
):
    depths, trials, epochs = [1, 2], 3, 60
    name = "outage"
    spec = write_spec(
        tmp_path,
        name=name,
        depths=depths,
        trials_per_depth=trials,
        # Every epoch must run for the epoch-by-epoch checks below: no early stopping.
        train={"epochs": epochs, "batch_size": 32, "patience": None},
        resources={"cpus_per_trial": 1, "max_concurrent": 2},
    )
    uri = mlflow_server.uri
    journal = tmp_path / "out" / name / "optuna.journal"
    driver = _start_search(tmp_path, spec, uri, env=shared_ray)
    try:
        _wait_for(
            driver,
            tmp_path,
            "trials logged epochs",
            lambda: any(r.data.metrics.get("val_loss") is not None for r in _trial_runs(uri, name)),
        )
        mlflow_server.stop()
        finished_before = _finished(journal, name, depths)
        _wait_for(
            driver, tmp_path, "the search noticed", lambda: "does not answer" in (tmp_path / "stderr").read_text()
        )
        # Training goes on without the server.
        _wait_for(
            driver,
            tmp_path,
            "a trial finished while MLflow was down",
            lambda: _finished(journal, name, depths) > finished_before,
        )
        mlflow_server.start()
        driver.wait(timeout=600)
    finally:
        kill_group(driver)
    stderr = (tmp_path / "stderr").read_text()
    assert driver.returncode == 0, stderr[-4000:]
    assert "answers again" in stderr and "could not be made" not in stderr

    runs = _trial_runs(uri, name)
    assert len(runs) == len(depths) * trials
    assert Counter(int(r.data.tags["stacktune.depth"]) for r in runs) == {d: trials for d in depths}
    assert all(r.info.status == "FINISHED" and r.data.tags["stacktune.state"] == "completed" for r in runs)
    client = MlflowClient(tracking_uri=uri)
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1)), run.info.run_name
        assert run.data.params  # the config, logged when the run was created
        assert "best_val_loss" in run.data.metrics


def _runs(uri: str, name: str, role: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("stacktune.role") == role]


def _check_published(uri: str, name: str, out: Path, *, depths, kinds) -> list:
    """Everything a finished search leaves in MLflow is there, and no run is left RUNNING; returns the eval runs."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]
    seeds = json.loads((out / "comparison.json").read_text())["evaluation"]["seeds"]
    evals = _runs(uri, name, "eval")
    found = Counter(
        (int(r.data.tags["stacktune.depth"]), r.data.tags["stacktune.eval_kind"], int(r.data.tags["stacktune.seed"]))
        for r in evals
    )
    assert found == {(d, k, s): 1 for d in depths for k in kinds for s in seeds}, (
        "an evaluation run is missing or doubled"
    )
    for run in evals:
        assert run.info.status == "FINISHED" and run.data.tags["stacktune.state"] == "completed", run.info.run_name
        assert {"val_loss", "test_loss", "n_params", "train_seconds"} <= set(run.data.metrics), run.info.run_name
        assert run.data.params, run.info.run_name
    for run in _runs(uri, name, "depth"):
        assert "test_loss_mean" in run.data.metrics and run.info.status == "FINISHED"
    (search,) = _runs(uri, name, "search")
    assert search.info.status == "FINISHED" and search.data.tags["stacktune.verdict"]
    assert search.data.tags["mlflow.note.content"].endswith(search.data.tags["stacktune.verdict"])
    report = {a.path for a in client.list_artifacts(search.info.run_id, "report")}
    assert "comparison.json" in {a.path for a in client.list_artifacts(search.info.run_id)}
    assert {"report/report.md", "report/test_loss_by_depth.png"} <= report
    return evals


def _outage_spec(tmp_path, name: str, **changes) -> str:
    return write_spec(
        tmp_path,
        name=name,
        depths=[1, 2],
        trials_per_depth=1,
        train={"epochs": 3, "batch_size": 32},
        resources={"cpus_per_trial": 1, "max_concurrent": 2},
        **changes,
    )


def _stderr(tmp_path) -> str:
    return (tmp_path / "stderr").read_text()


def test_evaluation_retrains_on_while_mlflow_is_down_and_its_runs_arrive_once_it_is_back(
    tmp_path, mlflow_server, shared_ray
):
    name = "eval-outage"
    spec = _outage_spec(tmp_path, name, evaluation={"seeds": 2})
    # The server stops as the first evaluation run is created, before that request reaches it.
    driver, relay = _search_through_outage(
        tmp_path, spec, mlflow_server, shared_ray, b"stacktune.eval_kind", "evaluation runs are kept"
    )
    stderr = _stderr(tmp_path)
    assert driver.returncode == 0, stderr[-4000:]
    assert "the retrainings go on" in stderr and "answers again" in stderr
    assert "could not be made" not in stderr and "Traceback" not in stderr
    evals = _check_published(mlflow_server.uri, name, tmp_path / "out" / name, depths=[1, 2], kinds=["tuned", "fixed"])
    # Retrainings that ended while the server was down: their runs were written after it came back.
    assert [r for r in evals if r.info.end_time >= relay.stopped_at * 1000]


def test_publishing_waits_for_mlflow_and_attaches_the_report_once_it_is_back(tmp_path, mlflow_server, shared_ray):
    name = "publish-outage"
    spec = _outage_spec(tmp_path, name, evaluation={"seeds": 2}, baseline=None)
    out = tmp_path / "out" / name
    # The server stops as the search attaches its first result file, before that upload reaches it.

    def written_locally_first(driver) -> None:
        assert all((out / f).exists() for f in ("comparison.json", "report.md", "best/overall.yaml"))
        assert driver.poll() is None, "the search did not wait for MLflow"

    driver, _ = _search_through_outage(
        tmp_path,
        spec,
        mlflow_server,
        shared_ray,
        b"comparison.json",
        "the results wait for it",
        while_down=written_locally_first,
    )
    stderr = _stderr(tmp_path)
    assert driver.returncode == 0, stderr[-4000:]
    assert f"the results wait for it (at most 600 s), kept meanwhile in {out}" in stderr and "answers again" in stderr
    assert "could not be made" not in stderr and "Traceback" not in stderr
    _check_published(mlflow_server.uri, name, out, depths=[1, 2], kinds=["tuned"])


def _search_through_outage(tmp_path, spec, mlflow_server, ray, stop_at: bytes, notice: str, while_down=None):
    """Runs the search through a relay that stops the server at the request holding `stop_at`; once the search has
    said `notice`, checks `while_down(driver)`, restarts the server and waits for the search to end."""
    relay = StopAtRequest(mlflow_server, stop_at)
    driver = _start_search(tmp_path, spec, relay.uri, env=ray)
    try:
        _wait_for(driver, tmp_path, f"a request with {stop_at!r}", relay.stopped.is_set)
        _wait_for(driver, tmp_path, "the search noticed", lambda: notice in _stderr(tmp_path))
        if while_down is not None:
            while_down(driver)
        mlflow_server.start()
        driver.wait(timeout=600)
    finally:
        kill_group(driver)
        relay.close()
    return driver, relay
