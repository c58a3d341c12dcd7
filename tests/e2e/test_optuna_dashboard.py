"""The README's `optuna-dashboard stacktune-runs/NAME/optuna.journal`: the real optuna-dashboard server, started on a
real search's journal, lists one study per depth with that depth's trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import EXAMPLES, free_port, kill_group, small_search

pytestmark = pytest.mark.slow
NAME = "dashboard-e2e"
DEPTHS = [1, 2]
TRIALS = 2
DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_ray):
    """A small real search through the CLI (depths 1 and 2, 2 trials of 2 epochs) with the default output folder,
    so that its journal lies where the README says: stacktune-runs/NAME/optuna.journal."""
    folder = tmp_path_factory.mktemp("dashboard")
    proc = small_search(
        EXAMPLES / "demo.yaml",
        name=NAME,
        depths=DEPTHS,
        trials=TRIALS,
        cwd=folder,
        args=("--tracking-uri", f"sqlite:///{folder}/mlflow.db"),
        env=shared_ray,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (folder / "stacktune-runs" / NAME / "optuna.journal").is_file()
    return folder


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return json.loads(response.read())


@pytest.fixture
def dashboard(work):
    """`optuna-dashboard stacktune-runs/NAME/optuna.journal` run in the search's folder, on 127.0.0.1 and a free
    port; yields its base URL and stops it on the way out, whatever the test did."""
    port = free_port()
    log = work / "dashboard.log"
    cmd = [str(DASHBOARD), f"stacktune-runs/{NAME}/optuna.journal", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"optuna-dashboard exited: {log.read_text(errors='replace')[-3000:]}"
            try:
                _get(f"{url}/api/meta")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"optuna-dashboard did not answer in {START_TIMEOUT_S} s: "
                        f"{log.read_text(errors='replace')[-3000:]}"
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            kill_group(proc)


def test_the_dashboard_lists_one_study_per_depth_with_its_trials(dashboard):
    studies = _get(f"{dashboard}/api/studies")["study_summaries"]
    by_name = {s["study_name"]: s for s in studies}
    assert sorted(by_name) == [f"{NAME}.depth-{d}" for d in DEPTHS]
    for depth in DEPTHS:
        summary = by_name[f"{NAME}.depth-{depth}"]
        assert summary["directions"] == ["minimize"]
        attrs = {a["key"]: a["value"] for a in summary["user_attrs"]}
        assert attrs["search"] == NAME and attrs["depth"] == str(depth)

        detail = _get(f"{dashboard}/api/studies/{summary['study_id']}")
        assert detail["name"] == f"{NAME}.depth-{depth}"
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * TRIALS
        assert len(detail["best_trials"]) == 1
        assert {p["name"] for p in detail["intersection_search_space"]} >= {"lr", "units_0"}
