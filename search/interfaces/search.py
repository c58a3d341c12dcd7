"""`stacktune search`: validate, connect, run the search, print the answer."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

from ..engine.locks import search_lock
from ..engine.ray_setup import check_ray_address, ray_address_from_env
from ..errors import ConfigError, DiskUnusable, SearchInterrupted, disk_error
from ..preflight import check_before_ray
from ..spec.convert import match_widths
from ..spec.loading import load_data, load_spec
from ..tracking import store
from ..tracking.models import check_model_name
from .overrides import SpecOverrides
from .progress import for_terminal
from .results import print_table

OPTUNA_STORAGE_ENV = "STACKTUNE_OPTUNA_STORAGE"  # the studies' database when a spec names none (a cluster's)
STORAGE_PATH_ENV = "STACKTUNE_STORAGE_PATH"  # trial checkpoints: a path every node sees, or s3://bucket/prefix


def search_command(
    spec_path: str,
    *,
    overrides: SpecOverrides,
    out: str,
    address: str | None,
    tracking_uri: str | None,
    as_json: bool,
    resume: bool,
    storage_path: str | None,
    confine: str | None,
    register: str | None = None,
    quiet: bool = False,
) -> int:
    """The CLI's `search`: returns the exit status."""
    if register is not None:
        check_model_name(register)  # before the minutes of training, not after them
    spec = load_spec(spec_path, overrides=overrides.as_dict(), confine=confine)
    if spec.storage is None and (url := os.environ.get(OPTUNA_STORAGE_ENV)):
        if "://" not in url:  # the value is not echoed: it may hold a password
            raise ConfigError(f"${OPTUNA_STORAGE_ENV}: expected a database URL like postgresql://user@host/db")
        spec.storage = url
    data = load_data(spec.dataset, base_dir=None)
    spec = match_widths(spec, input_size=data.input_size, output_size=data.output_size, task=data.task)
    shared_storage = storage_path or os.environ.get(STORAGE_PATH_ENV)
    address = address or ray_address_from_env()
    # Everything that needs no Ray, the name's lock included, is checked before Ray or Ray Tune is even imported
    # (seconds of imports): a refusal takes about a second.
    uri = check_before_ray(spec, out=out, shared_storage=shared_storage, tracking_uri=tracking_uri, address=address)
    check_ray_address(address)
    if not address:
        # Ray's single-machine mode: every Ray process listens on 127.0.0.1 only. Read when Ray is
        # first imported, so it is set before anything below imports it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    with search_lock(spec, out):  # run_search takes it again, as the same holder
        return _run(
            spec,
            data,
            out=out,
            uri=uri,
            address=address,
            resume=resume,
            quiet=quiet,
            as_json=as_json,
            shared_storage=shared_storage,
            register=register,
        )


def _run(
    spec,
    data,
    *,
    out: str,
    uri: str,
    address: str | None,
    resume: bool,
    quiet: bool,
    as_json: bool,
    shared_storage: str | None,
    register: str | None,
) -> int:
    """Runs the checked search with stdout kept for the answer; returns the exit status."""
    from ..pipeline import run_search

    try:
        # stdout is the command's answer alone; whatever Ray prints while it runs goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            # run_search checks everything Ray is not needed for, then starts Ray (and shuts it down before it
            # returns); from then on it owns SIGINT, SIGTERM and SIGHUP: each ends in SearchInterrupted.
            comparison = run_search(
                spec,
                data,
                out=out,
                tracking_uri=uri,
                address=address,
                resume=resume,
                progress=for_terminal(quiet=quiet, as_json=as_json),
                shared_storage=shared_storage,
                register=register,
            )
    except (SearchInterrupted, KeyboardInterrupt) as exc:
        why = str(exc) or "interrupted"
        print(f"error: {why}; finished trials are kept. Continue with: {_again()} --resume", file=sys.stderr)
        return exc.exit_code if isinstance(exc, SearchInterrupted) else 130
    except Exception as exc:
        disk = disk_error(exc)
        if disk is None or isinstance(exc, DiskUnusable):
            raise
        where = f" writing {disk.filename}" if disk.filename else ""
        print(
            f"error: {os.strerror(disk.errno).lower()}{where}; finished trials are kept. Free some space, then "
            f"continue with: {_again()} --resume",
            file=sys.stderr,
        )
        return DISK_FULL_EXIT
    if as_json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print_table(comparison, out_dir=Path(out) / spec.name, tracking_uri=uri)
    return 0


# The exit status of a search stopped because its disk filled up or became read-only.
DISK_FULL_EXIT = 4


def _again() -> str:
    """The command line that started this search, without --resume and without passwords."""
    return " ".join(shlex.quote(store.redact(a)) for a in ["stacktune", *sys.argv[1:]] if a != "--resume")
