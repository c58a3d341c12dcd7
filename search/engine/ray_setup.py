"""Ray and Ray Tune for a search: reaching or starting Ray, checking it can hold a trial, where checkpoints
go, and the one Tuner factory that the trials and the evaluation retrainings both run through."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from ..errors import ConfigError, UnreachableError, first_line
from ..spec.schema import SearchSpec

log = logging.getLogger("stacktune")


def quiet_ray_tune() -> None:
    """Trials are logged to MLflow; Ray Tune's own CSV/JSON loggers and console tables would duplicate it."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The driver owns SIGINT (engine/signals.py): Ray Tune's handler would end fit() quietly, as if it were done.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # Results are read from the callbacks, not from Ray's result files, which are switched off above.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def ray_address_from_env() -> str | None:
    """$RAY_ADDRESS where it names a Ray cluster, for `stacktune search`. A dashboard URL (http:// or https://) there
    is the Jobs API address that `stacktune submit` uses, not a cluster to join: the search runs on a local Ray, and
    the variable leaves this process's environment, since ray.init() would read it too."""
    address = os.environ.get("RAY_ADDRESS")
    if address and address.startswith(("http://", "https://")):
        logging.getLogger("stacktune").debug(
            "RAY_ADDRESS=%s is a Jobs API address (for stacktune submit): searching on a local Ray", address
        )
        del os.environ["RAY_ADDRESS"]
        return None
    return address or None


def check_ray_address(address: str | None) -> None:
    """Raises UnreachableError when a named Ray cluster does not accept connections."""
    if not address or address == "auto":
        return
    if address.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address: {address} is a dashboard (Jobs API) address: send the search there with `stacktune submit`"
        )
    url = urlparse(address if "://" in address else f"ray://{address}")
    host, port = url.hostname, url.port
    if not host or not port:
        raise ConfigError(f"--address: expected HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as exc:
        raise UnreachableError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


def check_ray_temp_dir() -> None:
    """Raises ConfigError when $RAY_TMPDIR, where a local Ray keeps its sessions and sockets, is not a folder this
    process can write in (Ray would fail after seconds of start-up, with a traceback)."""
    folder = os.environ.get("RAY_TMPDIR")
    if folder is None:
        return
    path = Path(folder)
    if not folder or not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"$RAY_TMPDIR {folder!r}: not a folder this process can write in; point it at one, or unset it"
        )


def _local_token_auth() -> None:
    """A local Ray with token authentication, as Ray itself now starts one, but told so explicitly: Ray then prints
    no warning on stderr, and a token of this process's own (unless the user has one) is never saved under $HOME,
    which may not be writable."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return  # the user's choice
    os.environ["RAY_AUTH_MODE"] = "token"
    has_token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not has_token and not (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    _refresh_auth()


_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


def _refresh_auth() -> None:
    """Ray reads its auth variables when it is imported, and caches them: refreshed as Ray's own switch to token mode
    does. A Ray without these internals still works, printing its warning."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # private: Ray has no public reload of auth settings

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError, TypeError):
        logging.getLogger("stacktune").debug("this Ray cannot refresh its token settings; it may warn about them")


def start_ray(address: str | None) -> None:
    """Connects to `address`, or starts a local Ray bound to 127.0.0.1 with this machine's CPUs."""
    import ray

    if ray.is_initialized():
        return
    if not address:
        _local_token_auth()
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    log.debug("Ray: %s", f"connecting to {address}" if address else "starting a local Ray on 127.0.0.1")
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # private: ray.init has no public twin of `ray start --node-ip-address`, only this hidden option
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise UnreachableError(f"cannot start or reach Ray ({first_line(exc)})") from None


@contextlib.contextmanager
def ray_for_search(address: str | None):
    """Ray while a search runs: a Ray the caller had already initialised is used and left running; otherwise one is
    started (or the cluster at `address`, else at $RAY_ADDRESS, joined) here and shut down (or left) on the way out,
    so that a search leaves no Ray of its own behind in the caller's process."""
    import ray

    owned = not ray.is_initialized()
    saved = {name: os.environ.get(name) for name in _AUTH_VARIABLES}
    try:
        # ray.init() reads $RAY_ADDRESS too, and refuses to start a local Ray beside it
        start_ray(address or (ray_address_from_env() if owned else None))
        yield
    finally:
        if owned and ray.is_initialized():
            log.debug("Ray: shutting down the Ray this search started or joined")
            ray.shutdown()
        if owned and any(os.environ.get(name) != value for name, value in saved.items()):
            # The token of the search's own Ray goes with it: a later ray.init() in the caller's process starts
            # the Ray the caller's own settings ask for.
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _refresh_auth()


def check_resources(spec: SearchSpec) -> None:
    """Raises ConfigError when no node of the cluster could ever hold one trial (Ray would wait forever)."""
    import ray

    need = {"CPU": spec.resources.cpus_per_trial, "GPU": spec.resources.gpus_per_trial}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(kind, 0.0) >= amount for kind, amount in need.items() if amount) for node in nodes):
        return
    have = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
    field = (
        "gpus_per_trial" if spec.resources.gpus_per_trial and not any(n.get("GPU") for n in nodes) else "cpus_per_trial"
    )
    raise ConfigError(
        f"resources.{field}: no node of the Ray cluster can hold a trial of {spec.resources.cpus_per_trial:g} CPU "
        f"and {spec.resources.gpus_per_trial:g} GPU (its nodes have {have})"
    )


def trial_slots(spec: SearchSpec) -> int:
    """How many trials of the spec's size the Ray cluster holds at once now (at least 1)."""
    import ray

    total = ray.cluster_resources() if ray.is_initialized() else {"CPU": float(os.cpu_count() or 1)}
    slots = []
    for kind, amount in (("CPU", spec.resources.cpus_per_trial), ("GPU", spec.resources.gpus_per_trial)):
        if amount:
            slots.append(int(total.get(kind, 0.0) // amount))
    if spec.resources.max_concurrent:
        slots.append(spec.resources.max_concurrent)
    return max(1, min(slots, default=1))


def storage_path_for(spec: SearchSpec, out_dir: Path, shared: str | None) -> str:
    """Where Ray Tune keeps checkpoints: under `shared` (a path every node sees, or s3://...), else out_dir/ray."""
    if not shared:
        return str(out_dir / "ray")
    if "://" in shared:
        return f"{shared.rstrip('/')}/{spec.name}"
    return str(Path(shared).resolve() / spec.name)


def make_tuner(
    trainable: Callable,
    *,
    spec: SearchSpec,
    name: str,
    storage_path: str,
    callbacks: list,
    data,
    trial_name: Callable[[Any], str],
    param_space: dict | None = None,
    num_samples: int = 1,
    search_alg=None,
    scheduler=None,
    metric: str | None = None,
    keep_checkpoints: int | None = None,
    **trainable_args: Any,
):
    """A Ray Tune Tuner over `trainable` with the spec's resources, failure handling and actor reuse.

    `data` travels once through Ray's object store (tune.with_parameters), not in every trial's config.
    """
    from ray import tune

    from .signals import StopOnSignal

    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=data, **trainable_args), resources),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=scheduler,
            metric=metric,
            mode="min" if metric else None,
            num_samples=num_samples,
            max_concurrent_trials=spec.resources.max_concurrent,
            # A fresh worker per trial would pay torch's import every time.
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=[*callbacks, StopOnSignal()],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep_checkpoints),
        ),
    )
