"""`stacktune ui`: the MLflow UI over the store the searches log to, opened on a search's runs."""

from __future__ import annotations

import collections
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ConfigError, StacktuneError, UnreachableError, first_line
from ..tracking import store, tags

log = logging.getLogger("stacktune")

HOST = "127.0.0.1"
# A cold start imports MLflow twice (the CLI, then uvicorn's worker): 10-20 s on a small machine.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0


def ui_command(*, tracking_uri: str | None, port: int, name: str | None, verbose: bool, as_json: bool = False) -> int:
    """The CLI's `ui`: serves the UI until Ctrl-C (or SIGTERM), then stops the server; returns 0. The addresses go
    to stdout once it answers (with `as_json`, as one JSON line a script can read before the server stops)."""
    uri = store.resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        # The searches log to a tracking server, which already serves this UI.
        store.check_tracking(uri)
        _print_addresses(uri.rstrip("/") + "/", _searches_to_show(uri, name), as_json=as_json, served=False)
        return 0
    uri = check_store_exists(uri)
    check_port_free(port)
    server = UIServer(uri, port, verbose=verbose)
    # Ctrl-C and `kill` both stop the server first; SIGINT is set too, as a shell ignores it in background jobs.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # The server takes seconds to import MLflow; open the store here meanwhile.
        server.launch()
        searches = _searches_to_show(check_store(uri), name)
        server.wait_until_healthy()
        _print_addresses(server.base_url, searches, as_json=as_json, served=True)
        log.info("serving %s; press Ctrl-C to stop", shown(uri))
        code = server.wait()
        raise StacktuneError(f"the MLflow server stopped by itself (exit status {code}): {server.last_line()}")
    except KeyboardInterrupt:
        log.info("stopping the MLflow UI")
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def shown(uri: str) -> str:
    """`uri` with any password replaced by ***, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.password:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def runs_page_url(base_url: str, experiment_id: str) -> str:
    """The address of an experiment's runs page (MLflow 3's UI routes after '#').

    Oldest first, so that the tree reads depth-1, depth-2, … and d1-t00, d1-t01, … (sorting by
    anything but the start time would flatten it). MLflow 3.17's sidebar switches between
    "GenAI" (its default) and "Model training" for every page; `workflowType` opens this one on
    the training side, where a search's runs belong.
    """
    query = "orderByKey=attributes.start_time&orderByAsc=true&workflowType=machine_learning"
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def check_store_exists(uri: str) -> str:
    """Quick checks without MLflow: the sqlite file or store folder exists, a database server answers.

    Returns `uri` with a sqlite path made absolute, so the server opens the same file whatever its folder.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).expanduser()
        if not path.is_file():
            raise UnreachableError(
                f"no MLflow store at {uri} ({path.resolve()} does not exist); "
                "run `stacktune search` first or pass --tracking-uri"
            )
        return f"sqlite:///{path.resolve()}"
    if "://" not in uri or uri.startswith("file:"):
        folder = Path(uri.removeprefix("file://")).expanduser()
        if not folder.is_dir():
            raise UnreachableError(f"no MLflow store at {uri} ({folder.resolve()} is not a folder)")
        return uri
    _check_db_server(uri)
    return uri


def check_store(uri: str) -> str:
    """Raises UnreachableError unless MLflow opens the store at `uri`; returns `uri`."""
    try:
        store.client(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, MLflow and driver errors alike
        reason = first_line(exc)
        raise UnreachableError(f"cannot open the MLflow store {shown(uri)} ({reason})") from None
    return uri


def _check_db_server(uri: str) -> None:
    """A database server that does not accept connections fails here, not after MLflow's minute of retries."""
    from urllib.parse import urlparse

    url = urlparse(uri)
    if "://" not in uri or url.scheme.split("+")[0] in ("sqlite", "file") or not url.hostname:
        return
    default_ports = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
    port = url.port or default_ports.get(url.scheme.split("+")[0])
    if port is None:
        return
    try:
        with socket.create_connection((url.hostname, port), timeout=5):
            pass
    except OSError as exc:
        raise UnreachableError(
            f"cannot reach the database of {shown(uri)} at {url.hostname}:{port} ({exc.strerror or exc})"
        ) from None


def search_experiments(uri: str) -> dict[str, str]:
    """{search name: experiment id} for every active experiment holding a stacktune search run."""
    client = store.client(uri)
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    found: dict[str, str] = {}
    if not experiments:
        return found
    runs = client.search_runs(
        list(experiments), filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_SEARCH}'", max_results=5000
    )
    for run in runs:
        found.setdefault(experiments[run.info.experiment_id], run.info.experiment_id)
    return dict(sorted(found.items()))


def _searches_to_show(uri: str, name: str | None) -> dict[str, str]:
    searches = search_experiments(uri)
    if name is None:
        return searches
    if name not in searches:
        known = ", ".join(searches) or "none yet"
        raise ConfigError(f"no search named {name!r} in {shown(uri)} (searches there: {known})")
    return {name: searches[name]}


def _print_addresses(base_url: str, searches: dict[str, str], *, as_json: bool, served: bool) -> None:
    """The UI's address and each search's runs page, on stdout; `served` when this command serves it (and stops
    it on Ctrl-C), not a tracking server's own."""
    if as_json:
        pages = [{"search": n, "experiment_id": e, "url": runs_page_url(base_url, e)} for n, e in searches.items()]
        print(json.dumps({"url": base_url, "served": served, "searches": pages}), flush=True)
        return
    print(f"MLflow UI: {base_url}")
    width = max((len(n) for n in searches), default=0)
    for name, experiment_id in searches.items():
        print(f"search {name.ljust(width)}  {runs_page_url(base_url, experiment_id)}")
    sys.stdout.flush()


def check_port_free(port: int) -> None:
    """Raises UnreachableError when something already listens on 127.0.0.1:`port`."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port: expected 1-65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option as the server's own socket, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UnreachableError(f"port {port} on {HOST} is already in use; pick another with --port") from None
            raise UnreachableError(f"cannot listen on {HOST}:{port} ({exc.strerror or exc})") from None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _die_with_parent():
    """A preexec_fn that has the server get SIGTERM when `stacktune ui` dies, even by SIGKILL (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


class UIServer:
    """`mlflow server` on 127.0.0.1 as a child process in its own process group."""

    def __init__(self, backend_store_uri: str, port: int, *, verbose: bool = False):
        self.uri = backend_store_uri
        self.port = port
        self.verbose = verbose
        self.base_url = f"http://{HOST}:{port}/"
        self._proc: subprocess.Popen | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=40)
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.uri,
            # One browser, one user: a single worker starts faster and holds one store connection.
            "--workers",
            "1",
        ]

    def launch(self) -> None:
        """Starts the server process; wait_until_healthy() tells when it serves."""
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        # Background jobs serve the GenAI pages (judges, trace roll-ups), which training runs never use.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            # Its own group, so that stop() reaches uvicorn and anything else it spawns.
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def wait_until_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Returns once /health answers; raises UnreachableError if the server exits or stays silent."""
        assert self._proc is not None and self._reader is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reader.join(timeout=2)
                raise UnreachableError(f"the MLflow server did not start on {shown(self.uri)} ({self.last_line()})")
            if self._healthy():
                return
            time.sleep(0.25)
        raise UnreachableError(f"the MLflow server did not answer on {self.base_url} within {timeout:.0f} s")

    def _read_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line.rstrip())
            if self.verbose:
                sys.stderr.write(line)

    def _healthy(self) -> bool:
        # Straight to 127.0.0.1, never through a proxy from the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.base_url + "health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def last_line(self) -> str:
        """The server's last telling output line, for an error message."""
        lines = [line.strip() for line in self._lines if line.strip()]
        for line in reversed(lines):
            if any(word in line for word in ("Error", "error", "Exception", "address already in use")):
                return line
        return lines[-1] if lines else "no output"

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def stop(self) -> None:
        """SIGTERM to the server's group, then SIGKILL to whatever is left of it; safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
