"""Shared fixtures: running the real `stacktune` command as a user does."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def pytest_collection_modifyitems(config, items):
    """Puts the modules with slow tests first, keeping each module's tests together and in their order: `make test`
    hands whole modules to its workers (a module's fixtures are then built once), and with the longest ones started
    first no worker is left with one long module at the end."""
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow)  # a stable sort


_LOCKS: list = []


def _xdist_locks():
    """The two lock files that this parallel run's workers share, opened once and kept open (None outside
    pytest-xdist)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run and not _LOCKS:
        folder = Path(tempfile.gettempdir()) / f"stacktune-tests-{run}"
        folder.mkdir(exist_ok=True)
        _LOCKS.extend(open(folder / name, "a") for name in ("gate", "room"))
    return _LOCKS or None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist, a test marked `serial` (it asserts how long something takes) runs while no other test
    does: every test holds the room shared, a serial one holds it alone, and it holds the gate while it waits, so
    that no other test starts in between."""
    locks = _xdist_locks()
    if locks is None:
        return (yield)
    gate, room = locks
    alone = item.get_closest_marker("serial") is not None
    fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    finally:
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
    try:
        return (yield)
    finally:
        fcntl.flock(room, fcntl.LOCK_UN)
        if alone:
            fcntl.flock(gate, fcntl.LOCK_UN)


def _cli_env(env: dict | None) -> dict:
    """This process's environment without a Ray address or tracking URI of the caller's, unbuffered, plus `env`
    (which may name a Ray: `shared_ray`)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return {**full_env, "PYTHONUNBUFFERED": "1", **(env or {})}


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `stacktune ARGS` in a fresh process and returns its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "stacktune.search.cli", *args],
        cwd=cwd,
        env=_cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Starts `stacktune ARGS` in its own process group, its output in cwd/stdout and cwd/stderr; the caller waits
    for it (and kills its group with kill_group on the way out)."""
    with open(cwd / "stdout", "wb") as out, open(cwd / "stderr", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "stacktune.search.cli", *args],
            cwd=cwd,
            env=_cli_env(env),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )


def small_search(
    spec: Path, *, name: str, depths: list[int], trials: int, cwd: Path, args=(), env: dict | None = None
) -> subprocess.CompletedProcess:
    """A small real search through the CLI: `trials` trials of 2 epochs per depth, no evaluation over seeds (for
    tests that need a search's trees and studies, not its verdict)."""
    return run_cli(
        "search",
        str(spec),
        "--name",
        name,
        "--depths",
        ",".join(map(str, depths)),
        "--trials-per-depth",
        str(trials),
        "--epochs",
        "2",
        "--seeds",
        "0",
        *args,
        cwd=cwd,
        env=env,
    )


@pytest.fixture
def warned(caplog):
    """`warned()`: what stacktune logged since the last call (the CLI prints it as `warning: ...` lines)."""

    def read() -> str:
        text = caplog.text
        caplog.clear()
        return text

    return read


@pytest.fixture
def cli(tmp_path):
    """`cli(*args)` runs the command in a temporary working folder."""

    def _run(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=tmp_path, env=env, timeout=timeout)

    return _run


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database on 127.0.0.1 for one test, dropped afterwards."""
    with postgres_database() as url:
        yield url


@contextlib.contextmanager
def postgres_database():
    """Creates a PostgreSQL database on 127.0.0.1, yields its URL, and drops it on the way out."""
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


def write_spec(folder: Path, **changes) -> str:
    """examples/demo.yaml with `changes` set (evaluation off unless they set it), written as folder/spec.yaml."""
    import yaml

    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    spec.update({"evaluation": {"seeds": 0}, **changes})
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def yaml_bomb(anchor: str, levels: int = 9) -> str:
    """YAML of nested anchors and aliases: `levels` levels of ten references each, 10**levels strings once expanded.
    The keys are ANCHOR0..ANCHORlevels; `*ANCHORlevels` names the biggest."""
    lines = [f"{anchor}0: &{anchor}0 [{', '.join(['lol'] * 10)}]"]
    lines += [f"{anchor}{i}: &{anchor}{i} [{', '.join([f'*{anchor}{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 that a test can stop and start again on the same port and store.

    Artifacts are served by the server itself (`mlflow-artifacts:`), from a folder of the test's.
    """

    def __init__(
        self, folder: Path, *, backend: str | None = None, args: tuple[str, ...] = (), env: dict | None = None
    ):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._store = backend or f"sqlite:///{folder}/server.db"
        self._artifacts = folder / "server-artifacts"
        self._args, self._env = args, env or {}
        self._log = folder / "server.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self._env}
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self._store,
            "--artifacts-destination",
            str(self._artifacts),
            "--workers",
            "1",
            *self._args,
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


class StopAtRequest:
    """A TCP relay in front of an MlflowServer that stops the server when a client first sends `marker` (a tag key,
    an artifact's name), before those bytes reach it: an outage that starts at one exact write, whatever the timing.

    The search is given `uri`; the test reads MLflow directly and starts the server again when it likes.
    """

    def __init__(self, server: MlflowServer, marker: bytes):
        self._server, self._marker = server, marker
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.stopped = threading.Event()
        self.stopped_at: float | None = None  # time.time() once the server is down
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._server.port), timeout=10)
        except OSError:  # the server is down: the client sees its connection closed
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()
        self._pump(conn, upstream, True)

    def _pump(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        tail = b""
        try:
            while data := src.recv(65536):
                if watch and not self.stopped.is_set():
                    seen = tail + data
                    if self._marker in seen:
                        self._stop_server()
                    tail = seen[-len(self._marker) :]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _stop_server(self) -> None:
        with self._lock:
            if not self.stopped.is_set():
                self._server.stop()
                self.stopped_at = time.time()
                self.stopped.set()


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


# `ray start`, with every node on 127.0.0.1. Ray swaps a loopback node address for the host's
# outward one unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with that set it refuses to start
# a worker node (multi-node is for Linux). Nodes here run Ray's own CLI with the address lookup
# pinned to 127.0.0.1 and worker nodes allowed, so every node binds, and is reached on, loopback.
_RAY_CLI = """
import sys
import ray._private.ray_constants as constants
import ray._private.services as services
constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _processes_under(folder: Path) -> dict[int, list[str]]:
    """pid -> command line of the processes whose command line names `folder` (this test's own), or that run in it
    (a Ray job's driver runs in its working folder below the head's temp folder)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if any(str(folder) in arg for arg in args) or cwd.startswith(f"{folder}{os.sep}"):
            found[int(entry.name)] = args
    return found


def _kill_processes_under(folder: Path) -> None:
    """Ends what is left of this test's Ray processes: only those whose command line names its own folder."""
    for pid in _processes_under(folder):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while _processes_under(folder) and time.monotonic() < deadline:
        time.sleep(0.2)


class LocalRayCluster:
    """A head (no CPUs unless asked, so trials run elsewhere) and worker nodes of one CPU each, each its own
    process tree."""

    def __init__(self, env: dict[str, str] | None = None):
        # A short root: Ray's unix sockets live below it and their paths are limited to 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="st-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        # A token of its own: no other Ray on this machine can join it, nor it theirs. Jobs find `stacktune`
        # on PATH, as they do in the cluster's image.
        self.env.update(
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **(env or {}),
        )
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start_node(self, name: str, *args: str) -> None:
        folder = self.root / name
        cmd = [
            sys.executable,
            "-c",
            _RAY_CLI,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            f"--temp-dir={folder}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--object-store-memory=100000000",
            *args,
        ]
        with open(self.root / f"{name}.log", "ab") as log:
            self.nodes[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def start(
        self, workers: int, timeout: float = 240, *, dashboard: bool = False, head_cpus: int = 0, head_args=()
    ) -> None:
        """Starts the head (with the dashboard and its Jobs API on 127.0.0.1 if asked, and `ray start` options
        `head_args`) and `workers` nodes."""
        port = self.dashboard.rsplit(":", 1)[1]
        self._start_node(
            "head",
            "--head",
            f"--port={self.port}",
            f"--num-cpus={head_cpus}",
            f"--include-dashboard={str(dashboard).lower()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={port}",
            f"--ray-client-server-port={free_port()}",  # not Ray's fixed 10001, which another test's head may hold
            *head_args,
        )
        self._wait_started("head", timeout)
        for i in range(workers):
            self._start_node(f"w{i}", f"--address={self.address}", "--num-cpus=1")
        for i in range(workers):
            self._wait_started(f"w{i}", timeout)
        self.node_ids = {name: self._node_id(name) for name in self.nodes}

    def _wait_started(self, name: str, timeout: float) -> None:
        log = self.root / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Ray runtime started" in text:
                return
            assert self.nodes[name].poll() is None, f"ray node {name} exited:\n{text[-3000:]}"
            time.sleep(0.5)
        raise AssertionError(
            f"ray node {name} did not start in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}"
        )

    def _node_id(self, name: str) -> str:
        """The node id its raylet was started with."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for args in _processes_under(self.root / name).values():
                if args[0].endswith("raylet"):
                    for arg in args:
                        if arg.startswith("--node_id="):
                            return arg.split("=", 1)[1]
            time.sleep(0.5)
        raise AssertionError(f"no raylet found for ray node {name}")

    def kill(self, name: str) -> None:
        """The node dies at once: its raylet, agents and the trial workers it runs."""
        kill_group(self.nodes[name])
        _kill_processes_under(self.root / name)

    def stop(self) -> None:
        for name in sorted(self.nodes, key=lambda n: n == "head"):
            kill_group(self.nodes[name])
        _kill_processes_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_ray():
    """One Ray head with this machine's CPUs for the searches of this test process that ask for it, as a cluster
    of one node: the environment (`env=`) that points `stacktune search` at it. Starting and stopping a local Ray
    costs each search seconds of CPU in its helper processes; the searches that check Ray itself (its start, stop,
    signals, failures) keep starting their own. The workers it starts have its environment, not the search's."""
    ray = LocalRayCluster()
    try:
        # no log monitor: its searches send no worker logs to their drivers, and it would poll all session
        ray.start(workers=0, head_cpus=os.cpu_count() or 1, head_args=["--include-log-monitor=false"])
        yield {
            "RAY_ADDRESS": ray.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": ray.env["RAY_AUTH_TOKEN"],
            # as the head was told: 127.0.0.1 in the address stays 127.0.0.1, not this machine's outward address
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
    finally:
        ray.stop()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """`mlflow_store(folder)`: the URI of a new, empty SQLite MLflow store `folder/mlflow.db`, a copy of one that MLflow
    made once for this test process. MLflow makes a new store in about 70 schema migrations, seconds of CPU each
    time; the tests that check how stacktune creates a store (refusals that leave a folder empty, a store cut off
    mid-creation, several processes creating one at once) start from nothing instead."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    with contextlib.chdir(template.parent):  # the Default experiment's artifact root: beside the template, not here
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments(max_results=1)

    def new(folder: Path, name: str = "mlflow.db") -> str:
        target = Path(folder) / name
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"

    return new
