"""docker-compose.yml as `docker-compose config` (Debian's package; no container engine needed) resolves it."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from urllib.parse import urlparse

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


SECRET_CHECK = REPO / "docker" / "refuse-example-secrets.sh"
ONE_SHOT = {"minio-buckets"}  # jobs that exit once done: waited for with service_completed_successfully


def _example_env() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )


def _secret_names(service: dict) -> list[str]:
    """The variables a service's entrypoint checks before it starts, or [] when it checks none."""
    entrypoint = service.get("entrypoint") or []
    if len(entrypoint) < 2 or entrypoint[0] != "sh" or not entrypoint[1].endswith("/" + SECRET_CHECK.name):
        return []
    rest = entrypoint[2:]
    return rest[: rest.index("--")] if "--" in rest else rest


def _check_secrets(names: list[str], env: dict, *command: str) -> subprocess.CompletedProcess:
    """Runs the services' own check, as their entrypoints do, with `env` as the container's environment."""
    return subprocess.run(
        ["sh", str(SECRET_CHECK), *names, *(["--", *command] if command else [])],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in env.items()}},
    )


def test_mlflow_answers_the_host_names_it_is_reached_by(config):
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = config["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    head = urlparse(config["services"]["ray-head"]["environment"]["MLFLOW_TRACKING_URI"])
    for host in (head.netloc, "127.0.0.1:5000", "localhost:5000", "127.0.0.1:15000"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "attacker.example.com")
    assert "*" not in allowed


def test_every_long_running_service_has_a_healthcheck_and_is_waited_for(config):
    services = config["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service and "restart" not in service, name
            continue
        check = service.get("healthcheck")
        assert check and check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            want = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            assert how["condition"] == want, f"{name} -> {needed}"
    # A worker is healthy while its raylet runs; the head while its dashboard (the Jobs API) answers.
    assert "raylet" in " ".join(services["ray-worker"]["healthcheck"]["test"])
    assert ":8265/" in " ".join(services["ray-head"]["healthcheck"]["test"])
    assert ":5000/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_every_image_has_a_pinned_tag(config):
    for name, service in config["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition("/")[2].partition(":")
        assert repository and tag and tag != "latest" and "@" not in repository, f"{name}: {image}"
        if "build" not in service:  # pulled, so a version: not a moving major-only tag like postgres:16
            assert any(ch.isdigit() for ch in tag) and ("." in tag or "-" in tag), f"{name}: {image}"


def test_the_dockerfile_base_image_is_a_build_argument():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    first_from = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    args = [line for line in lines[:first_from] if line.startswith("ARG BASE_IMAGE=")]
    assert len(args) == 1, "ARG BASE_IMAGE=... must come before the first FROM"
    default = args[0].split("=", 1)[1].strip("\"'")
    assert ":" in default and not default.endswith(":latest"), default
    assert lines[first_from] in ("FROM ${BASE_IMAGE}", "FROM $BASE_IMAGE")


def test_every_service_with_a_secret_checks_it_before_it_starts(config):
    for name, service in config["services"].items():
        env = service.get("environment", {})
        holding = {k for k, v in env.items() if "change-me" in str(v)}
        names = _secret_names(service)
        assert holding <= set(names), f"{name} does not check {sorted(holding - set(names))}"
        if not names:
            continue
        path = service["entrypoint"][1]
        if "build" in service:  # the Dockerfile copies docker/ to /opt/stacktune/docker
            assert path == f"/opt/stacktune/docker/{SECRET_CHECK.name}", name
        else:
            assert f"{SECRET_CHECK}:{path}:ro" in service["volumes"], name
        assert "--" in service["entrypoint"] and (service["entrypoint"][-1] != "--" or service.get("command")), name


def test_the_unedited_example_secrets_are_refused_in_one_line(config):
    checked = {name: s for name, s in config["services"].items() if _secret_names(s)}
    assert set(checked) == set(config["services"]), "every service of this file holds a secret"
    for name, service in checked.items():
        result = _check_secrets(_secret_names(service), service["environment"], "echo", "started")
        assert result.returncode == 1, (name, result)
        assert result.stdout == "", name  # the service's command never ran
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "example value from .env.example" in lines[0] and ".env" in lines[0], lines


def test_real_secrets_pass_the_check_and_the_service_command_runs(tmp_path):
    env = tmp_path / "real.env"
    real = {k: secrets.token_hex(16) if v.startswith("change-me") else v for k, v in _example_env().items()}
    assert any(v.startswith("change-me") for v in _example_env().values())
    env.write_text("".join(f"{k}={v}\n" for k, v in real.items()))
    result = _compose("config", env_file=str(env))
    assert result.returncode == 0, result.stderr
    for name, service in yaml.safe_load(result.stdout)["services"].items():
        run = _check_secrets(_secret_names(service), service["environment"], "echo", "started", name)
        assert run.returncode == 0 and run.stdout == f"started {name}\n" and run.stderr == "", (name, run)


def test_the_secret_check_refuses_a_secret_embedded_in_a_url_and_bad_names():
    url = {"STORE": "postgresql://stacktune:change-me-postgres@postgres:5432/optuna"}
    refused = _check_secrets(["STORE"], url)
    assert refused.returncode == 1 and refused.stderr.startswith("STORE still holds an example value")
    assert _check_secrets(["STORE"], {"STORE": "postgresql://stacktune:s3cret@postgres/optuna"}).returncode == 0
    assert _check_secrets(["UNSET"], {}).returncode == 0  # compose's ${VAR:?} handles missing secrets
    bad = _check_secrets(["A;B"], {})
    assert bad.returncode == 2 and "not a variable name" in bad.stderr
