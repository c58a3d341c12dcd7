"""A disk that fills up mid-search: one line, exit 4, finished trials kept, and a resume once there is room."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import finished_trials, kill_group, run_cli, start_cli, write_spec
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of the test's own (8 MiB until the test shrinks it), unmounted afterwards (it needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_up(disk: Path) -> None:
    """Leaves the disk a few KiB of room: the search's next checkpoint does not fit."""
    used_kib = shutil.disk_usage(disk).used // 1024
    subprocess.run(["mount", "-o", f"remount,size={used_kib + 8}k", str(disk)], check=True)


def test_a_full_disk_stops_the_search_in_one_line_and_a_resume_finishes_it(tmp_path, small_disk, mlflow_store):
    # Trials long enough that the disk is made full once a trial has finished and while others still run, whatever
    # the machine's load: at a fixed size, the disk could fill before the first trial ended.
    spec = write_spec(tmp_path, name="full", depths=[1], trials_per_depth=8, train={"epochs": 30, "batch_size": 32})
    uri = mlflow_store(tmp_path)  # the MLflow store is on another disk; the output folder fills up
    args = ("search", spec, "--out", str(small_disk), "--tracking-uri", uri)
    journal = small_disk / "full" / "optuna.journal"
    driver = start_cli(*args, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not (journal.exists() and finished_trials(JournalStorage(JournalFileBackend(str(journal))), "full", [1])):
            assert driver.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.2)
        _fill_up(small_disk)
        driver.wait(timeout=300)
    finally:
        kill_group(driver)
    stderr = (tmp_path / "stderr").read_text()
    assert driver.returncode == 4, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on device") and "finished trials are kept" in last
    assert last.endswith(f"--tracking-uri {uri} --resume")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished_before = len([r for r in runs if r.info.status == "FINISHED"])
    assert finished_before >= 1

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = run_cli(*args, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (depth,) = json.loads(resumed.stdout)["depths"]
    assert sum(depth["trials"].values()) == 8
    assert depth["trials"]["completed"] >= finished_before
