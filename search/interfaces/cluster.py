"""`stacktune submit`, `jobs`, `logs` and `stop`: searches run as Ray jobs on a cluster, through the Ray Jobs API."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from stacktune.datasets.errors import shown

from ..errors import ConfigError, UnreachableError, first_line
from ..spec.loading import check_origins, load_data, load_spec, read_overridden
from ..tracking import tags
from ..tracking.models import check_model_name
from .overrides import SpecOverrides

log = logging.getLogger("stacktune")

JOB_PREFIX = "stacktune-"
SPEC_FILE = "spec.yaml"
# `stacktune stop` interrupts the search as Ctrl-C does, and gives it time to close its runs and keep its trials.
_JOB_ENV = {"PYTHONUNBUFFERED": "1", "RAY_JOB_STOP_SIGNAL": "SIGINT", "RAY_JOB_STOP_WAIT_TIME_S": "60"}
# Exit statuses of `submit --wait` and `stop` for jobs that did not succeed.
_EXIT = {"SUCCEEDED": 0, "STOPPED": 130, "FAILED": 1}


def dashboard_address(address: str | None) -> str:
    """The Jobs API's URL: --address, else $RAY_API_SERVER_ADDRESS (what `ray start` and `ray job submit` use), else
    $RAY_ADDRESS; HOST:PORT means http://HOST:PORT."""
    if address:
        source = "--address"
    elif os.environ.get("RAY_API_SERVER_ADDRESS"):
        source, address = "$RAY_API_SERVER_ADDRESS", os.environ["RAY_API_SERVER_ADDRESS"]
    else:
        source, address = "$RAY_ADDRESS", os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError(
            "--address: name the cluster's dashboard, like http://HEAD:8265 "
            "(or set RAY_API_SERVER_ADDRESS or RAY_ADDRESS)"
        )
    if address.startswith("ray://") or address == "auto":
        raise ConfigError(
            f"{source}: jobs are submitted to the dashboard's HTTP port, like http://HEAD:8265, got {address!r}"
        )
    url = address if "://" in address else f"http://{address}"
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and ("://" in address or parts.port)
    except ValueError:  # a port that is not a number
        usable = False
    if not usable:
        raise ConfigError(
            f"{source}: expected the cluster's dashboard like http://HEAD:8265 or HEAD:8265, got {shown(address)}"
        )
    return url


def _client(address: str | None):
    """A JobSubmissionClient for the cluster; Ray adds its auth token when RAY_AUTH_MODE=token."""
    # Ray sends RAY_AUTH_TOKEN (or the file RAY_AUTH_TOKEN_PATH names) only when RAY_AUTH_MODE=token: a token given
    # means that mode, and it has to be set before Ray is first imported, which reads it.
    if (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")) and not os.environ.get(
        "RAY_AUTH_MODE"
    ):
        os.environ["RAY_AUTH_MODE"] = "token"
    from ray.job_submission import JobSubmissionClient

    # Ray's notes on uploading and on closing the log stream are its own business, not the user's.
    for name in [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]:
        logging.getLogger(name).setLevel(logging.WARNING)
    url = dashboard_address(address)
    try:
        return JobSubmissionClient(url)
    except ConnectionError:
        raise UnreachableError(f"cannot reach the Ray Jobs API at {url} (is the dashboard running there?)") from None
    except Exception as exc:  # Ray's auth and version errors come as several exception types
        raise UnreachableError(f"the Ray Jobs API at {url} refused the connection: {first_line(exc)}") from None


def _call(what: str, job_id: str, fn, *args):
    """Calls the Jobs API; a missing job or a refused request becomes a one-line error."""
    try:
        return fn(*args)
    except RuntimeError as exc:
        if "404" in str(exc) or "does not exist" in str(exc):
            raise ConfigError(f"no job {job_id!r} on this cluster (`stacktune jobs` lists them)") from None
        raise UnreachableError(f"could not {what} job {job_id}: {first_line(exc)}") from None


def package_job(
    spec_path: str,
    spec,
    folder: Path,
    *,
    overrides: SpecOverrides,
    tracking_uri: str | None,
    storage_path: str | None,
    resume: bool = False,
    register: str | None = None,
) -> list[str]:
    """Writes the job's folder (the spec, and the CSV it names) and returns the search command it runs."""
    check_origins(spec, load_data(spec.dataset, base_dir=None))  # bad data fails here, before anything is uploaded
    raw = read_overridden(Path(spec_path), overrides.as_dict())
    if spec.dataset.csv:
        csv = Path(spec.dataset.csv)
        shutil.copy2(csv, folder / csv.name)
        raw["dataset"]["csv"] = csv.name
    (folder / SPEC_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    command = ["stacktune", "search", SPEC_FILE, "--confine", "."]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    if storage_path:
        command += ["--storage-path", storage_path]
    if register:
        command += ["--register", register]
    if resume:
        # The job's folder is new, so the studies must be in a database the cluster keeps (its
        # $STACKTUNE_OPTUNA_STORAGE, or the spec's storage:); the search says so in one line otherwise.
        command.append("--resume")
    return command


def submit_command(
    spec_path: str,
    *,
    overrides: SpecOverrides,
    address: str | None,
    tracking_uri: str | None,
    storage_path: str | None,
    wait: bool,
    resume: bool = False,
    as_json: bool = False,
    register: str | None = None,
) -> int:
    """`stacktune submit`: prints the job id; with --wait follows the log and returns the search's exit status.
    With `as_json` it prints one JSON object instead (job, search, status; with --wait the log goes to stderr and
    the object, printed at the end, has the job's final status and exit code)."""
    if register is not None:
        check_model_name(register)
    spec = load_spec(spec_path, overrides=overrides.as_dict())  # a bad spec fails before the cluster is contacted
    name = spec.name
    client = _client(address)
    with tempfile.TemporaryDirectory(prefix="stacktune-job-") as tmp:
        command = package_job(
            spec_path,
            spec,
            Path(tmp),
            overrides=overrides,
            tracking_uri=tracking_uri,
            storage_path=storage_path,
            resume=resume,
            register=register,
        )
        job_id = f"{JOB_PREFIX}{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            client.submit_job(
                entrypoint=shlex.join(command),
                submission_id=job_id,
                # The working folder travels with the job; nothing secret goes in the runtime env.
                runtime_env={"working_dir": tmp, "env_vars": _JOB_ENV},
                metadata={tags.SEARCH: name},
            )
        except RuntimeError as exc:
            raise UnreachableError(f"the cluster refused the job: {first_line(exc)}") from None
    if not wait:
        print(_json({"job": job_id, "search": name, "status": "PENDING"}) if as_json else job_id)
        log.info("submitted %s; follow it with: stacktune logs %s --follow", name, job_id)
        return 0
    if not as_json:
        print(job_id)
    code, status = _follow(client, job_id, out=sys.stderr if as_json else sys.stdout)
    if as_json:
        status = status or str(_call("read", job_id, client.get_job_info, job_id).status.value)
        print(_json({"job": job_id, "search": name, "status": status, "exit_code": code}))
    return code


def _json(answer: dict) -> str:
    """A command's result as one JSON object (--json)."""
    return json.dumps(answer, indent=2)


def _follow(client, job_id: str, out=None) -> tuple[int, str | None]:
    """Streams the job's log to `out` (stdout) until it ends; returns its exit status and final status (None when
    following stopped before the job ended)."""
    out = out or sys.stdout

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        log.info("\nstopped following; the job goes on (stop it with: stacktune stop %s)", job_id)
        return 130, None
    except RuntimeError as exc:
        log.warning("the log stream ended early (%s)", first_line(exc))
    return _final_status(client, job_id)


def _final_status(client, job_id: str, timeout: float = 60) -> tuple[int, str]:
    """Waits for the job to end; returns its exit status (the search's own when the job failed) and its status."""
    deadline = time.monotonic() + timeout
    info = _call("read", job_id, client.get_job_info, job_id)
    while not info.status.is_terminal() and time.monotonic() < deadline:
        time.sleep(0.5)
        info = _call("read", job_id, client.get_job_info, job_id)
    status = str(info.status.value)
    print(
        f"job {job_id} {status}" + (f": {info.message}" if status == "FAILED" and info.message else ""), file=sys.stderr
    )
    if status == "FAILED" and info.driver_exit_code:
        return int(info.driver_exit_code), status
    return _EXIT.get(status, 1), status


def jobs_command(*, address: str | None, as_json: bool) -> int:
    """`stacktune jobs`: the searches submitted to the cluster, oldest first."""
    client = _client(address)
    jobs = sorted(
        (j for j in client.list_jobs() if (j.submission_id or "").startswith(JOB_PREFIX)),
        key=lambda j: j.start_time or 0,
    )
    rows = [_job_row(j) for j in jobs]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        log.info("no stacktune jobs on this cluster")
        return 0
    columns = ("job", "search", "status", "started", "duration")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    for row in [dict(zip(columns, columns, strict=False)), *rows]:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
    return 0


def _job_row(job) -> dict[str, Any]:
    start, end = job.start_time, job.end_time or (time.time() * 1000 if job.start_time else None)
    return {
        "job": job.submission_id,
        "search": (job.metadata or {}).get(tags.SEARCH, "-"),
        "status": str(job.status.value),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start / 1000)) if start else "-",
        "duration": f"{(end - start) / 1000:.0f}s" if start and end else "-",
    }


def logs_command(job: str, *, address: str | None, follow: bool) -> int:
    """`stacktune logs JOB`: the job's log so far, or with --follow until it ends."""
    client = _client(address)
    if follow:
        _call("read", job, client.get_job_info, job)
        code, _ = _follow(client, job)
        return code
    sys.stdout.write(_call("read the log of", job, client.get_job_logs, job))
    return 0


def stop_command(job: str, *, address: str | None, as_json: bool = False) -> int:
    """`stacktune stop JOB`: stops the search (its finished trials are kept) and waits until it has ended; with
    `as_json` prints {"job", "status"} on stdout."""
    client = _client(address)
    info = _call("read", job, client.get_job_info, job)
    if info.status.is_terminal():
        log.info("job %s already ended: %s", job, info.status.value)
        code, status = 0, str(info.status.value)
    else:
        _call("stop", job, client.stop_job, job)
        code, status = _final_status(client, job)
    if as_json:
        print(_json({"job": job, "status": status}))
    return 0 if code in (0, 130) else code
