"""docker-compose.yml as `docker-compose config` (Debian's package; no container engine needed) resolves it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from conftest import REPO

from stacktune.search.interfaces.search import OPTUNA_STORAGE_ENV, STORAGE_PATH_ENV

RAY_NODES = ("ray-head", "ray-worker", "ray-gpu-worker")


def _compose(*args: str, env_file: str = ".env.example") -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: install Debian's docker-compose package (.ci/run does)"
    # A clean environment: only the env file may supply the secrets.
    return subprocess.run(
        [binary, "--env-file", env_file, "--profile", "gpu", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def config() -> dict:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_accepts_the_file_with_the_example_env(config):
    assert set(config["services"]) == {
        "ray-head",
        "ray-worker",
        "ray-gpu-worker",
        "mlflow",
        "postgres",
        "minio",
        "minio-buckets",
    }


def test_published_ports_listen_on_loopback_only(config):
    published = [p for s in config["services"].values() for p in s.get("ports", [])]
    assert published, "nothing is published: the dashboard and the MLflow UI must be reachable"
    assert all(str(p).startswith("127.0.0.1:") for p in published), published
    assert {str(p).split(":")[1] for p in published} == {"8265", "5000", "9001"}


def test_every_ray_node_requires_the_token_and_shares_checkpoint_storage(config):
    for name in RAY_NODES:
        service = config["services"][name]
        assert service["environment"]["RAY_AUTH_MODE"] == "token", name
        assert service["environment"]["RAY_AUTH_TOKEN"] == "change-me-ray-token", name
        mount = service["environment"][STORAGE_PATH_ENV].split("/")[1]
        assert any(v.startswith(f"ray-shared:/{mount}") for v in service["volumes"]), name


def test_only_the_head_holds_tracking_and_database_credentials(config):
    head = config["services"]["ray-head"]["environment"]
    assert head["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert head[OPTUNA_STORAGE_ENV].startswith("postgresql://") and head[OPTUNA_STORAGE_ENV].endswith("/optuna")
    for name in ("ray-worker", "ray-gpu-worker"):
        env = config["services"][name]["environment"]
        assert not {k for k in env if k.startswith(("MLFLOW_", "STACKTUNE_OPTUNA", "AWS_"))}, name


def test_the_services_run_what_the_loopback_cluster_test_runs(config):
    services = config["services"]
    head = services["ray-head"]["command"].split()
    assert head[:3] == ["ray", "start", "--head"] and "--num-cpus=0" in head and "--block" in head
    for name in ("ray-worker", "ray-gpu-worker"):
        assert services[name]["command"].split()[:3] == ["ray", "start", "--address=ray-head:6379"]
    mlflow = services["mlflow"]
    assert mlflow["command"].split()[:2] == ["mlflow", "server"] and "basic-auth" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert mlflow["environment"]["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://mlflow/"
    gpu = services["ray-gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_no_secret_is_written_in_the_compose_file_itself():
    text = (REPO / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for key, value in example.items():
        if "change-me" in value:
            assert value not in text, key


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    env = tmp_path / "partial.env"
    env.write_text("STACKTUNE_BIND=127.0.0.1\n")
    result = _compose("config", "-q", env_file=str(env))
    assert result.returncode != 0
    assert "set RAY_AUTH_TOKEN in .env" in result.stderr
