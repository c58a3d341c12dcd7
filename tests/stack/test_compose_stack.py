"""docker-compose.yml started for real: a container engine of the test's own, the stacktune image built from
the Dockerfile, the stack brought up with two Ray workers, a search submitted to it with `stacktune submit`,
and what it left read back from the MLflow server.

Needs root, Debian's docker.io, docker-compose and debootstrap (`make test-stack` installs them), and the
ports 5000 and 8265 of 127.0.0.1 free. There is no registry: the base image is a debootstrap of this
machine's Debian mirror (tests/stack/base-image.sh), and the two registry images of the compose file,
postgres and minio, are replaced by stand-ins built on it (tests/stack/compose.ci.yml). The engine runs
with no iptables rules and no default bridge; the stack talks on compose's own network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO, run_cli, write_spec

pytestmark = [pytest.mark.stack, pytest.mark.timeout(2700)]

HERE = Path(__file__).resolve().parent
BASE, SERVICES, STACKTUNE = "stacktune-ci/base:test", "stacktune-ci/services:test", "stacktune:cpu"
PROJECT = "stacktune-ci"
NAME, DEPTHS, TRIALS = "stack", [1, 2], 2
PUBLISHED = (5000, 8265)


def _run(*args: str, env: dict, timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


class Engine:
    """dockerd with its own data root, exec root and socket, stopped by its pid."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.socket = folder / "docker.sock"
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(folder),
            "DOCKER_HOST": f"unix://{self.socket}",
            # The classic builder: no buildx plugin needed, and --network host reaches the package registries.
            "DOCKER_BUILDKIT": "0",
            "COMPOSE_DOCKER_CLI_BUILD": "0",
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        log = open(self.folder / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [
                shutil.which("dockerd") or "/usr/sbin/dockerd",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                f"--data-root={self.folder / 'data'}",
                f"--exec-root={self.folder / 'exec'}",
                f"--pidfile={self.folder / 'dockerd.pid'}",
                f"--host=unix://{self.socket}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while subprocess.run(["docker", "info"], env=self.env, capture_output=True).returncode != 0:
            assert self.proc.poll() is None, (self.folder / "dockerd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dockerd did not answer within a minute"
            time.sleep(0.5)

    def docker(self, *args: str, timeout: float = 900, cwd: Path = REPO) -> subprocess.CompletedProcess:
        return _run("docker", *args, env=self.env, timeout=timeout, cwd=cwd)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # What a killed engine can leave mounted under its data root, deepest first.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.folder))), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class Stack:
    """docker-compose.yml plus the test's stand-ins, under a project name of its own."""

    def __init__(self, engine: Engine, folder: Path):
        self.engine = engine
        self.secrets = {
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "MINIO_ROOT_USER": "stacktune",
            "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
            "MLFLOW_ADMIN_USER": "admin",
            "MLFLOW_ADMIN_PASSWORD": secrets.token_hex(16),
            "MLFLOW_SECRET_KEY": secrets.token_hex(16),
            "STACKTUNE_BIND": "127.0.0.1",
        }
        self.env_file = folder / "stack.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.secrets.items()))

    def compose(self, *args: str, env_file: Path | None = None, timeout: float = 600, check: bool = True):
        command = [
            "docker-compose",
            "--project-name",
            PROJECT,
            "--env-file",
            str(env_file or self.env_file),
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(HERE / "compose.ci.yml"),
            *args,
        ]
        if check:
            return _run(*command, env=self.engine.env, timeout=timeout)
        return subprocess.run(command, cwd=REPO, env=self.engine.env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-6000:]

    def alive_ray_nodes(self) -> int:
        probe = (
            "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        result = self.compose("exec", "-T", "ray-head", "python", "-c", probe, check=False, timeout=120)
        return int(result.stdout.split()[-1]) if result.returncode == 0 and result.stdout.split() else 0


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def engine():
    busy = [port for port in PUBLISHED if _port_in_use(port)]
    assert not busy, f"127.0.0.1 ports {busy} are taken: the stack publishes MLflow on 5000 and Ray's dashboard on 8265"
    engine = Engine(Path(tempfile.mkdtemp(prefix="stacktune-engine-")))
    try:
        engine.start()
        work = Path(tempfile.mkdtemp(prefix="stacktune-base-"))
        try:
            base = subprocess.run(
                ["bash", str(HERE / "base-image.sh"), str(work), BASE],
                env={**os.environ, **engine.env, "PIP_FIND_LINKS": os.environ.get("PIP_FIND_LINKS", "")},
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert base.returncode == 0, base.stderr[-3000:]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        engine.docker("build", "--network", "host", "-f", str(HERE / "services.Dockerfile"),
                      "--build-arg", f"BASE_IMAGE={BASE}", "-t", SERVICES, str(HERE))  # fmt: skip
        # The project's own Dockerfile on the test's base; PyTorch from PyPI (the base's local wheels first).
        engine.docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE}",
                      "--build-arg", "TORCH_INDEX=https://pypi.org/simple", "-t", STACKTUNE, ".")  # fmt: skip
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    stack = Stack(engine, tmp_path_factory.mktemp("stack"))
    try:
        stack.compose("up", "-d", "--no-build", "--scale", "ray-worker=2", timeout=900)
        deadline = time.monotonic() + 300
        while stack.alive_ray_nodes() < 3:
            assert time.monotonic() < deadline, "the two workers did not join the head:\n" + stack.logs()
            time.sleep(3)
        yield stack
    finally:
        with contextlib.suppress(Exception):
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300, check=False)


def test_a_search_submitted_to_the_compose_stack_runs_on_both_workers_and_lands_in_mlflow(stack, tmp_path, monkeypatch):
    # Each trial takes a whole worker (a container sees this machine's 2 cores): two at a time means one on each.
    spec = write_spec(
        tmp_path,
        name=NAME,
        depths=DEPTHS,
        trials_per_depth=TRIALS,
        train={"epochs": 3, "batch_size": 32},
        evaluation={"seeds": 2},
        resources={"cpus_per_trial": 2, "max_concurrent": 2},
    )
    client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": stack.secrets["RAY_AUTH_TOKEN"]}
    done = run_cli("submit", spec, "--address", "http://127.0.0.1:8265", "--wait", cwd=tmp_path, env=client_env,
                   timeout=1500)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:] + stack.logs()
    assert "SUCCEEDED" in done.stderr and "depth" in done.stdout
    login = {"MLFLOW_TRACKING_USERNAME": stack.secrets["MLFLOW_ADMIN_USER"]}
    login["MLFLOW_TRACKING_PASSWORD"] = stack.secrets["MLFLOW_ADMIN_PASSWORD"]
    # stacktune on the host reads the search back through the server (comparison.json is an artifact in S3).
    exported = run_cli("export", NAME, "--out", "exported", "--tracking-uri", "http://127.0.0.1:5000", cwd=tmp_path,
                       env=login, timeout=300)  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "exported" / NAME / "comparison.json").is_file()

    # Read back as a user of the UI would: through the published port, logged in as the admin.
    from mlflow.tracking import MlflowClient

    for key, value in login.items():
        monkeypatch.setenv(key, value)
    # As the README tells a user of the host: artifacts through the server (its presigned URLs name minio:9000).
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    client = MlflowClient(tracking_uri="http://127.0.0.1:5000")
    experiment = client.get_experiment_by_name(NAME)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    trials = [r for r in runs if r.data.tags.get("stacktune.role") == "trial"]
    assert Counter(int(r.data.tags["stacktune.depth"]) for r in trials) == {d: TRIALS for d in DEPTHS}
    assert all(r.info.status == "FINISHED" for r in trials), [r.info.status for r in trials]
    # The head has no CPUs: two node ids are the two worker containers.
    assert len({r.data.tags["stacktune.node_id"] for r in trials}) == 2
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (search,) = [r for r in runs if r.data.tags.get("stacktune.role") == "search"]
    assert search.info.status == "FINISHED"
    # The report went through MLflow's artifact proxy into the S3 bucket, and comes back the same way.
    report = client.download_artifacts(search.info.run_id, "report/report.md", str(tmp_path))
    assert "depth" in Path(report).read_text()

    # The studies are in the stack's PostgreSQL, database optuna.
    query = (
        "SELECT s.study_name, count(*) FROM trials t JOIN studies s USING (study_id) "
        "WHERE t.state = 'COMPLETE' GROUP BY 1"
    )
    rows = stack.compose("exec", "-T", "postgres", "psql", "-U", "stacktune", "-d", "optuna", "-At", "-c", query)
    counts = dict(line.split("|") for line in rows.stdout.split())
    assert counts == {f"{NAME}.depth-{d}": str(TRIALS) for d in DEPTHS}, rows.stdout

    jobs = json.loads(
        run_cli("jobs", "--json", "--address", "http://127.0.0.1:8265", cwd=tmp_path, env=client_env).stdout
    )
    assert [j["status"] for j in jobs if j["search"] == NAME] == ["SUCCEEDED"]


def test_a_service_holding_an_example_secret_refuses_to_start(stack, tmp_path):
    example = tmp_path / "example.env"
    example.write_text((REPO / ".env.example").read_text())
    refused = stack.compose("run", "--rm", "--no-deps", "postgres", env_file=example, check=False, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "POSTGRES_PASSWORD still holds an example value from .env.example" in refused.stdout + refused.stderr
