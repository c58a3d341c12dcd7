"""Which Ray a local `stacktune search` joins when RAY_ADDRESS is exported: a cluster's, never a dashboard URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import _cli_env

from stacktune.search.engine.ray_setup import ray_address_from_env


@pytest.mark.parametrize("url", ["http://head:8265", "https://ray.example.com"])
def test_a_jobs_api_address_is_left_to_submit_and_the_search_runs_locally(monkeypatch, url):
    monkeypatch.setenv("RAY_ADDRESS", url)
    assert ray_address_from_env() is None
    assert "RAY_ADDRESS" not in os.environ  # ray.init() reads it too


@pytest.mark.parametrize("address", ["head:6379", "ray://head:10001", "auto"])
def test_a_cluster_address_is_joined(monkeypatch, address):
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert ray_address_from_env() == address and os.environ["RAY_ADDRESS"] == address


def test_no_address_means_a_local_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address_from_env() is None


JOIN = """
import ray
from stacktune.search.engine.ray_setup import ray_for_search
with ray_for_search(None):
    print(ray.get_runtime_context().gcs_address)
print(ray.is_initialized())
"""


@pytest.mark.slow
def test_run_search_joins_the_cluster_that_ray_address_names(shared_ray):
    """As `stacktune search` does: the Python API's default Ray is $RAY_ADDRESS's cluster, not a local one that
    ray.init would refuse to start beside the variable. In a process of its own: Ray reads some of the variables
    when it is imported."""
    done = subprocess.run(
        [sys.executable, "-c", JOIN], env=_cli_env(shared_ray), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [shared_ray["RAY_ADDRESS"], "False"]
