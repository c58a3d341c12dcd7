"""Shared fixtures: running the real `stacktune` command as a user does."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `stacktune ARGS` in a fresh process and returns its exit status and output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("RAY_ADDRESS", None)
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "stacktune.search.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli(tmp_path):
    """`cli(*args)` runs the command in a temporary working folder."""

    def _run(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=tmp_path, env=env, timeout=timeout)

    return _run


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database on 127.0.0.1 for one test, dropped afterwards."""
    import psycopg

    name = f"stacktune_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 that a test can stop and start again on the same port and store."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._store = f"sqlite:///{folder}/server.db"
        self._log = folder / "server.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self._store, "--workers", "1",
        ]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, self._log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer in {timeout} s: {self._log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stops the server and its workers at once, the way a crashed host would."""
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait(timeout=30)
        self._proc = None


def finished_trials(storage, name: str, depths) -> int:
    """How many trials of search `name` have finished, across its depths' studies (read through Optuna)."""
    import optuna

    total = 0
    for depth in depths:
        try:
            study = optuna.load_study(study_name=f"{name}.depth-{depth}", storage=storage)
        except KeyError:
            continue
        total += sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return total
