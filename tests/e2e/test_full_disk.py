"""A disk that fills up mid-search: one line, exit 4, finished trials kept, and a resume once there is room."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import run_cli, write_spec
from mlflow.tracking import MlflowClient


@pytest.fixture
def small_disk(tmp_path):
    """A 100 KiB tmpfs of the test's own, unmounted afterwards (it needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_search_in_one_line_and_a_resume_finishes_it(tmp_path, small_disk, mlflow_store):
    spec = write_spec(tmp_path, name="full", depths=[1], trials_per_depth=8, train={"epochs": 2, "batch_size": 32})
    uri = mlflow_store(tmp_path)  # the MLflow store is on another disk; the output folder fills up
    args = ("search", spec, "--out", str(small_disk), "--tracking-uri", uri)
    full = run_cli(*args, cwd=tmp_path)
    assert full.returncode == 4, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on device") and "finished trials are kept" in last
    assert last.endswith(f"--tracking-uri {uri} --resume")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("full").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished_before = len([r for r in runs if r.info.status == "FINISHED"])
    assert finished_before >= 1, "the disk filled before a trial finished: the test's sizes need adjusting"

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = run_cli(*args, "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (depth,) = json.loads(resumed.stdout)["depths"]
    assert sum(depth["trials"].values()) == 8
    assert depth["trials"]["completed"] >= finished_before
