"""A search survives what happens to real searches: a killed driver, a diverging trial, early stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
import yaml
from conftest import finished_trials, kill_group, run_cli, start_cli, write_spec
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


def _runs(uri: str, name: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _journal(tmp_path, name: str):
    return JournalStorage(JournalFileBackend(str(tmp_path / "out" / name / "optuna.journal")))


def _finished(tmp_path, name: str, depth: int) -> int:
    """How many trials of one depth had finished, over its replicate searches' studies, read through Optuna (a trial
    that a stop cut off is finished too, marked interrupted, and runs again: it is not counted)."""
    storage = _journal(tmp_path, name)
    prefix = f"{name}.depth-{depth}"
    studies = [n for n in optuna.get_all_study_names(storage) if n == prefix or n.startswith(f"{prefix}.replicate-")]
    return sum(
        t.state.is_finished() and not t.user_attrs.get("interrupted")
        for n in studies
        for t in optuna.load_study(study_name=n, storage=storage).get_trials(deepcopy=False)
    )


def _stop_after_a_trial(driver: subprocess.Popen, tmp_path, depths, before: int, sig: signal.Signals) -> str:
    """Sends `sig` to the search once a trial of this attempt has finished; its stderr (empty after SIGKILL)."""
    journal = tmp_path / "out" / "resume" / "optuna.journal"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if journal.exists() and finished_trials(_journal(tmp_path, "resume"), "resume", depths) > before:
                break
            assert driver.poll() is None, "the search ended before it could be stopped"
            time.sleep(0.5)
        else:
            pytest.fail("no trial finished in time")
        driver.send_signal(sig)
        if sig == signal.SIGKILL:
            driver.wait(timeout=30)
            kill_group(driver)  # the killed driver's local Ray goes with it, and no longer holds its pipes
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            kill_group(driver)
    return stderr or ""


def test_a_search_stopped_by_ctrl_c_sigterm_and_sigkill_resumes_each_time_to_exactly_its_budget(tmp_path, mlflow_store):
    # One search's life: Ctrl-C while it runs, SIGTERM while its resume runs, SIGKILL while the next resume runs,
    # each once a trial of its own attempt finished; then a last resume. Two replicate searches per depth: every one
    # of the four studies must end with exactly its budget.
    depths, trials, replicates = [1, 2], 4, 2
    spec = write_spec(
        tmp_path,
        name="resume",
        depths=depths,
        trials_per_depth=trials,
        replicates=replicates,
        train={"epochs": 6, "batch_size": 32},
    )
    uri = mlflow_store(tmp_path)
    args = [sys.executable, "-m", "stacktune.search.cli", "search", spec, "--out", "out", "--tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    journal = tmp_path / "out" / "resume" / "optuna.journal"
    for number, (sig, code) in enumerate([(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)]):
        before = finished_trials(_journal(tmp_path, "resume"), "resume", depths) if journal.exists() else 0
        driver = subprocess.Popen(
            args + (["--resume"] if number else []),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        stderr = _stop_after_a_trial(driver, tmp_path, depths, before, sig)
        assert driver.returncode == code, stderr[-3000:]
        if sig == signal.SIGKILL:
            break
        # A stop it sees ends cleanly: one line saying how to resume, no traceback, no run left RUNNING.
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        assert last.startswith("error: ") and "--resume" in last and "Traceback" not in stderr
        assert last.startswith("error: terminated (SIGTERM)") == (sig == signal.SIGTERM)
        runs = _runs(uri, "resume")
        assert not [r for r in runs if r.info.status == "RUNNING"]
        (search_run,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
        assert search_run.info.status == "KILLED"
    time.sleep(2)
    kept = {d: _finished(tmp_path, "resume", d) for d in depths}
    proc = run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads((tmp_path / "out" / "resume" / "comparison.json").read_text())
    assert comparison["replicates"] == replicates
    assert [sum(d["trials"].values()) for d in comparison["depths"]] == [trials * replicates] * len(depths)
    for entry in comparison["depths"]:
        found = entry["replicates"]
        assert [r["replicate"] for r in found] == [1, 2]
        assert all(sum(r["trials"].values()) == trials for r in found)
        # The depth's best is the best of its searches: what the exports and the model take.
        assert entry["best_val_loss"] == min(r["best_val_loss"] for r in found)
        assert entry["best_trial"]["name"] in {r["best_trial"]["name"] for r in found}
    # The progress lines count on from the trials the killed driver had finished, over the depth's searches.
    for depth in depths:
        counts = [
            int(line.split(":")[1].split("/")[0])
            for line in proc.stderr.splitlines()
            if line.startswith(f"  depth {depth}: ")
        ]
        assert counts == list(range(kept[depth] + 1, trials * replicates + 1)), proc.stderr[-3000:]

    runs = _runs(uri, "resume")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len([r for r in runs if r.data.tags.get("stacktune.role") == "search"]) == 1
    by_id = {r.info.run_id: r for r in runs}
    replicate_runs = [r for r in runs if r.data.tags.get("stacktune.role") == "replicate"]
    assert sorted(
        (int(r.data.tags["stacktune.depth"]), int(r.data.tags["stacktune.replicate"])) for r in replicate_runs
    ) == [
        (d, r) for d in depths for r in (1, 2)
    ]  # one run per replicate search, made once although the search started twice
    trial_runs = [r for r in runs if r.data.tags.get("stacktune.role") == "trial"]
    counted = [r for r in trial_runs if r.data.tags.get("stacktune.state") in {"completed", "pruned", "failed"}]
    per_search = Counter(
        (int(r.data.tags["stacktune.depth"]), int(r.data.tags["stacktune.replicate"])) for r in counted
    )
    assert per_search == {(d, r): trials for d in depths for r in (1, 2)}
    for run in trial_runs:  # search -> depth -> replicate -> trial
        parent = by_id[run.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["stacktune.role"] == "replicate"
        assert parent.data.tags["stacktune.replicate"] == run.data.tags["stacktune.replicate"]
    assert len({r.info.run_name for r in trial_runs}) == len(trial_runs), "a trial was logged twice"
    cut_off = [r for r in trial_runs if r not in counted]
    assert all(r.info.status == "KILLED" and r.data.tags["stacktune.state"] == "interrupted" for r in cut_off)

    storage = _journal(tmp_path, "resume")
    for depth in depths:
        for name in (f"resume.depth-{depth}", f"resume.depth-{depth}.replicate-2"):
            study = optuna.load_study(study_name=name, storage=storage)
            kept = [t for t in study.get_trials() if not t.user_attrs.get("interrupted")]
            assert len(kept) == trials and all(t.state.is_finished() for t in study.get_trials())

    # The exported overall best is the best over every search of every depth.
    best = min(comparison["depths"], key=lambda d: d["best_val_loss"])
    exported = run_cli("export", "resume", "--out", "again", "--tracking-uri", uri, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    overall = yaml.safe_load((tmp_path / "again" / "resume" / "best" / "overall.yaml").read_text())
    assert overall["model"] == best["best_config"]["model"]


def test_a_diverging_configuration_fails_alone_and_the_search_completes(tmp_path, shared_ray, mlflow_store):
    spec = write_spec(
        tmp_path,
        name="nan",
        depths=[1, 2],
        trials_per_depth=4,
        train={"epochs": 2, "batch_size": 32},
        space={"units": [8], "lr": [1.0e-3, 1.0e30]},
        sampler={"kind": "random"},
    )
    uri = mlflow_store(tmp_path)
    proc = run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", cwd=tmp_path, env=shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial_runs = [r for r in _runs(uri, "nan") if r.data.tags.get("stacktune.role") == "trial"]
    states = Counter(r.data.tags["stacktune.state"] for r in trial_runs)
    assert states["failed"] >= 1 and states["completed"] >= 1 and sum(states.values()) == 8
    for run in trial_runs:
        if run.data.tags["stacktune.state"] == "failed":
            assert run.info.status == "FAILED"
            assert "nan" in run.data.tags["stacktune.reason"] or "inf" in run.data.tags["stacktune.reason"]
    storage = _journal(tmp_path, "nan")
    told = Counter(
        t.state for d in (1, 2) for t in optuna.load_study(study_name=f"nan.depth-{d}", storage=storage).get_trials()
    )
    assert told[TrialState.FAIL] == states["failed"] and told[TrialState.COMPLETE] == states["completed"]


@pytest.mark.parametrize("kind", ["asha", "hyperband", "median"])
def test_early_stopping_within_depth_prunes_trials_and_keeps_the_budget(tmp_path, kind, shared_ray, mlflow_store):
    spec = write_spec(
        tmp_path,
        name="prune",
        depths=[1, 3],
        trials_per_depth=6,
        train={"epochs": 6, "batch_size": 32},
        pruning={"kind": kind, "grace_epochs": 1, "reduction": 2},
        resources={"max_concurrent": 1},
        sampler={"kind": "random", "n_startup_trials": 2},  # the median pruner's start-up trials
    )
    uri = mlflow_store(tmp_path)
    proc = run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", cwd=tmp_path, env=shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads(proc.stdout)
    assert [sum(d["trials"].values()) for d in comparison["depths"]] == [6, 6]
    client = MlflowClient(tracking_uri=uri)
    trial_runs = [r for r in _runs(uri, "prune") if r.data.tags.get("stacktune.role") == "trial"]
    pruned = [r for r in trial_runs if r.data.tags["stacktune.state"] == "pruned"]
    assert pruned, f"{kind} stopped nothing"
    for run in pruned:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) < 6
    storage = _journal(tmp_path, "prune")
    told = sum(
        t.state == TrialState.PRUNED
        for d in (1, 3)
        for t in optuna.load_study(study_name=f"prune.depth-{d}", storage=storage).get_trials()
    )
    assert told == len(pruned)
    assert sum(d["epochs"] for d in comparison["depths"]) < 2 * 6 * 6


def _wait_for_retraining(driver: subprocess.Popen, stderr_path, timeout: float = 300) -> None:
    """Waits until the search's stderr shows a finished retraining (`  retraining 1/16: ...`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
        if any(line.lstrip().startswith("retraining ") for line in text.splitlines()):
            return
        assert driver.poll() is None, f"the search ended before a retraining finished:\n{text[-3000:]}"
        time.sleep(0.2)
    pytest.fail(f"no retraining finished in time:\n{stderr_path.read_text(errors='replace')[-3000:]}")


def test_a_signal_during_the_evaluation_publishes_nothing_and_resume_finishes_it(tmp_path, mlflow_store):
    # 2 depths x (tuned + fixed) x 4 seeds = 16 retrainings; each attempt is stopped after its first one.
    depths, seeds, name = [1, 2], 4, "evalsig"
    planned = len(depths) * 2 * seeds
    spec = write_spec(
        tmp_path,
        name=name,
        depths=depths,
        trials_per_depth=2,
        train={"epochs": 2, "batch_size": 32},
        evaluation={"seeds": seeds},
    )
    uri = mlflow_store(tmp_path)
    folder = tmp_path / "out" / name
    args = ("search", spec, "--out", "out", "--tracking-uri", uri)
    search_ids = set()
    for number, (sig, code) in enumerate([(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]):
        driver = start_cli(*args, *(["--resume"] if number else []), cwd=tmp_path)
        try:
            _wait_for_retraining(driver, tmp_path / "stderr")
            driver.send_signal(sig)
            driver.wait(timeout=120)
        finally:
            kill_group(driver)
        stderr = (tmp_path / "stderr").read_text()
        assert driver.returncode == code, f"{sig.name}: {stderr[-3000:]}"
        last = [line for line in stderr.splitlines() if line.strip()][-1]
        assert last.startswith("error: ") and f"({sig.name})" in last and "--resume" in last, last
        assert "Traceback" not in stderr
        assert not (folder / "comparison.json").exists() and not (folder / "report.md").exists()
        assert (tmp_path / "stdout").read_text() == ""
        runs = _runs(uri, name)
        assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], sig.name
        (search_run,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
        assert search_run.info.status == "KILLED" and "stacktune.verdict" not in search_run.data.tags
        search_ids.add(search_run.info.run_id)

    proc = run_cli(*args, "--resume", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads(proc.stdout)
    assert comparison["evaluation"]["jobs"] == planned and "missing" not in comparison["evaluation"]
    assert (folder / "comparison.json").exists()
    runs = _runs(uri, name)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (search_run,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
    search_ids.add(search_run.info.run_id)
    assert len(search_ids) == 1 and search_run.info.status == "FINISHED"
    assert comparison["mlflow_run_id"] == search_run.info.run_id
    depth_runs = {r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == search_run.info.run_id}
    evals = [r for r in runs if r.data.tags.get("stacktune.role") == "eval"]
    assert all(r.data.tags["mlflow.parentRunId"] in depth_runs for r in evals)
    jobs = Counter(
        (r.data.tags["stacktune.depth"], r.data.tags["stacktune.eval_kind"], r.data.tags["stacktune.seed"])
        for r in evals
    )
    assert len(jobs) == planned and set(jobs.values()) == {1}, jobs
