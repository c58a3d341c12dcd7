"""One search per name: a second search or a `--resume` of a live one is refused; a resume cannot shrink a budget;
processes that create one MLflow store at once do not collide."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import finished_trials, kill_group, run_cli, start_cli, write_spec
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


def _wait_until(proc, tmp_path, check, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            pytest.fail(f"the search ended before {what}:\n{(tmp_path / 'stderr').read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting until {what}")


def _counts(journal, name: str, depths) -> dict[int, int]:
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return {
        d: len(optuna.load_study(study_name=f"{name}.depth-{d}", storage=storage).get_trials(deepcopy=False))
        for d in depths
    }


def _refused(proc: subprocess.CompletedProcess, pid: int) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert "'locked' is already running" in lines[-1] and f"pid {pid} on " in lines[-1], lines[-1]


def test_a_live_search_keeps_its_name_and_a_resume_cannot_shrink_its_budget(tmp_path, mlflow_store):
    name, depths = "locked", [1, 2]
    # Many long trials: the search is still running while the other commands start and are refused.
    spec = write_spec(
        tmp_path,
        name=name,
        depths=depths,
        trials_per_depth=40,
        train={"epochs": 60, "batch_size": 32, "patience": None},
    )
    uri = mlflow_store(tmp_path)
    journal = tmp_path / "out" / name / "optuna.journal"
    search = ("search", spec, "--out", "out", "--tracking-uri", uri)
    first = start_cli(*search, cwd=tmp_path)
    try:
        _wait_until(
            first,
            tmp_path,
            lambda: (
                journal.exists()
                and finished_trials(JournalStorage(JournalFileBackend(str(journal))), name, depths) >= 1
            ),
            "a trial finished",
        )
        # The same name and folder, as a new search and as a resume: both stopped before they touch anything.
        _refused(run_cli(*search, cwd=tmp_path), first.pid)
        _refused(run_cli(*search, "--resume", cwd=tmp_path), first.pid)
        assert first.poll() is None, "the first search did not survive the others"
        os.killpg(first.pid, signal.SIGINT)
        first.wait(timeout=300)
    finally:
        kill_group(first)
    assert first.returncode == 130, (tmp_path / "stderr").read_text()[-3000:]

    storage = JournalStorage(JournalFileBackend(str(journal)))
    done = {
        d: len(
            [
                t
                for t in optuna.load_study(study_name=f"{name}.depth-{d}", storage=storage).get_trials()
                if t.state.is_finished() and not t.user_attrs.get("interrupted")
            ]
        )
        for d in depths
    }
    assert all(n >= 1 for n in done.values()) and max(done.values()) < 40
    before = _counts(journal, name, depths)
    # Resuming with fewer trials than a depth already ran would leave the depths with unequal budgets.
    if max(done.values()) > 1:
        low = run_cli(*search, "--resume", "--trials-per-depth", "1", cwd=tmp_path)
        assert low.returncode == 2, low.stderr[-3000:]
        assert "cannot resume with trials_per_depth 1" in low.stderr.strip().splitlines()[-1]
        assert f"--trials-per-depth {max(done.values())} or more" in low.stderr
        assert _counts(journal, name, depths) == before  # refused before any trial was touched
    # The lock of the stopped search is free again, and a budget of what the busiest depth ran evens them out.
    most = max(done.values())
    resumed = run_cli(*search, "--resume", "--trials-per-depth", str(most), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    comparison = json.loads(resumed.stdout)
    assert [sum(d["trials"].values()) for d in comparison["depths"]] == [most] * len(depths)


_CREATE = """
import sys
from stacktune.search.tracking import store
client = store.client(sys.argv[1])
store.ensure_experiment(client, "exp-" + sys.argv[2])
"""


def test_processes_that_create_one_sqlite_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", _CREATE, uri, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)[-3000:]
    from mlflow.tracking import MlflowClient

    names = {e.name for e in MlflowClient(tracking_uri=uri).search_experiments()}
    assert {f"exp-{i}" for i in range(4)} <= names
