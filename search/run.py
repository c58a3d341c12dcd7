"""`stacktune search`: validate, connect, run every depth's study in one Ray Tune run, summarise."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import tracking
from .config import SearchSpec, parse, read_yaml
from .errors import ConfigError, StacktuneError, UnreachableError
from .single import load_data
from .space import match_widths

log = logging.getLogger("stacktune")


OPTUNA_STORAGE_ENV = "STACKTUNE_OPTUNA_STORAGE"  # the studies' database when a spec names none (a cluster's)
STORAGE_PATH_ENV = "STACKTUNE_STORAGE_PATH"  # trial checkpoints: a path every node sees, or s3://bucket/prefix


def load_spec(path: str | Path, *, overrides: dict[str, Any] | None = None, confine: str | Path | None = None) -> SearchSpec:
    """Reads a search spec, applies command-line overrides, and anchors a CSV path to the spec's folder.

    With `confine` (a submitted job's folder), the spec may not make the search read or write files outside it.
    """
    path = Path(path)
    spec = parse(SearchSpec, read_overridden(path, overrides), source=str(path))
    if spec.dataset.csv:
        spec.dataset.csv = str((path.resolve().parent / spec.dataset.csv).resolve())
    if confine is not None:
        _check_confined(spec, Path(confine).resolve(), source=str(path))
    return spec


def read_overridden(path: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The spec file's mapping with each non-None `section.key` override set in it."""
    raw = read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *sections, leaf = key.split(".")
        target = raw
        for section in sections:
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{path}: {section}: expected a mapping")
        target[leaf] = value
    return raw


def spec_overrides(args) -> dict[str, Any]:
    """The spec fields that `search` and `submit` options override."""
    return {
        "name": args.name, "depths": args.depths, "trials_per_depth": args.trials_per_depth,
        "train.epochs": args.epochs, "evaluation.seeds": args.seeds,
    }


def _check_confined(spec: SearchSpec, folder: Path, *, source: str) -> None:
    """Raises ConfigError when a spec names a file outside `folder`: a CSV, or an SQLite study database."""
    named = {"dataset.csv": spec.dataset.csv}
    if spec.storage and spec.storage.startswith("sqlite"):
        named["storage"] = spec.storage.split(":///", 1)[-1] or "."
    for field, value in named.items():
        if value and not Path(folder, value).resolve().is_relative_to(folder):
            raise ConfigError(f"{source}: {field}: {value!r} lies outside the job's folder; submit files that travel with the job")


def check_ray_address(address: str | None) -> None:
    """Raises UnreachableError when a named Ray cluster does not accept connections."""
    if not address or address == "auto":
        return
    if address.startswith(("http://", "https://")):
        raise ConfigError(f"--address: {address} is a dashboard (Jobs API) address: send the search there with `stacktune submit`")
    url = urlparse(address if "://" in address else f"ray://{address}")
    host, port = url.hostname, url.port
    if not host or not port:
        raise ConfigError(f"--address: expected HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as exc:
        raise UnreachableError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


def start_ray(address: str | None) -> None:
    """Connects to `address`, or starts a local Ray bound to 127.0.0.1 with this machine's CPUs."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise UnreachableError(f"cannot start or reach Ray ({str(exc).splitlines()[0]})") from None


def check_resources(spec: SearchSpec) -> None:
    """Raises ConfigError when no node of the cluster could ever hold one trial (Ray would wait forever)."""
    import ray

    need = {"CPU": spec.resources.cpus_per_trial, "GPU": spec.resources.gpus_per_trial}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(kind, 0.0) >= amount for kind, amount in need.items() if amount) for node in nodes):
        return
    have = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
    field = "gpus_per_trial" if spec.resources.gpus_per_trial and not any(n.get("GPU") for n in nodes) else "cpus_per_trial"
    raise ConfigError(
        f"resources.{field}: no node of the Ray cluster can hold a trial of {spec.resources.cpus_per_trial:g} CPU "
        f"and {spec.resources.gpus_per_trial:g} GPU (its nodes have {have})"
    )


def storage_path_for(spec: SearchSpec, out_dir: Path, shared: str | None) -> str:
    """Where Ray Tune keeps trial checkpoints: `shared` (a path every node sees, or s3://...) per search, else out_dir/ray."""
    if not shared:
        return str(out_dir / "ray")
    if "://" in shared:
        return f"{shared.rstrip('/')}/{spec.name}"
    return str(Path(shared).resolve() / spec.name)


def _storage(spec: SearchSpec, out_dir: Path):
    """Optuna storage that outlives the process: the spec's RDB URL, else a journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if spec.storage:
        return optuna.storages.RDBStorage(spec.storage)
    return optuna.storages.JournalStorage(JournalFileBackend(str(out_dir / "optuna.journal")))


def prepare_studies(spec: SearchSpec, storage, *, resume: bool) -> dict:
    """One study per depth: fresh ones (an earlier search of the name is replaced), or the existing ones on resume.

    On resume, trials a killed driver left RUNNING are closed as failed and marked `interrupted`,
    so they neither count against the budget nor stay open.
    """
    import optuna
    from optuna.trial import TrialState

    from .searcher import make_sampler, study_name

    studies = {}
    for depth in spec.depths:
        name = study_name(spec.name, depth)
        if not resume:
            try:
                optuna.delete_study(study_name=name, storage=storage)
            except KeyError:
                pass
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=make_sampler(spec, depth), direction="minimize", load_if_exists=resume
        )
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.set_user_attr("search", spec.name)
        study.set_user_attr("depth", depth)
        studies[depth] = study
    return studies


class SearchInterrupted(StacktuneError):
    """The search stopped before every depth had its trials (Ctrl-C, SIGTERM)."""

    exit_code = 130


def _open_runs(client, experiment_id: str, spec: SearchSpec, *, resume: bool) -> tuple[str, dict[int, str]]:
    """The search run and its depth runs: new ones, or on resume those of the unfinished search."""
    if resume:
        previous = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tracking.ROLE}` = 'search' and tags.`{tracking.SEARCH}` = '{spec.name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous and previous[0].info.status != "FINISHED":
            search_id = previous[0].info.run_id
            client.update_run(search_id, status="RUNNING")
            children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{search_id}'")
            depth_runs = {int(r.data.tags[tracking.DEPTH]): r.info.run_id for r in children if r.data.tags.get(tracking.ROLE) == "depth"}
            for run_id in depth_runs.values():
                client.update_run(run_id, status="RUNNING")
            _close_cut_off_trials(client, experiment_id, list(depth_runs.values()))
            depth_runs.update(_new_depth_runs(client, experiment_id, spec, search_id, [d for d in spec.depths if d not in depth_runs]))
            return search_id, depth_runs
    search_id = client.create_run(
        experiment_id,
        run_name=f"search-{time.strftime('%m%d-%H%M%S')}",
        tags={tracking.ROLE: "search", tracking.SEARCH: spec.name, "mlflow.note.content": _describe(spec)},
    ).info.run_id
    tracking.log_batch(client, search_id, params=tracking.as_params(_search_params(spec)))
    return search_id, _new_depth_runs(client, experiment_id, spec, search_id, spec.depths)


def _new_depth_runs(client, experiment_id: str, spec: SearchSpec, search_id: str, depths: list[int]) -> dict[int, str]:
    tags = {"mlflow.parentRunId": search_id, tracking.ROLE: "depth", tracking.SEARCH: spec.name}
    return {
        d: client.create_run(experiment_id, run_name=f"depth-{d}", tags={**tags, tracking.DEPTH: str(d)}).info.run_id
        for d in depths
    }


def _close_cut_off_trials(client, experiment_id: str, depth_runs: list[str]) -> None:
    """Trial runs a killed driver left RUNNING end as KILLED, tagged `interrupted`."""
    for depth_run in depth_runs:
        open_runs = client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{depth_run}' and attributes.status = 'RUNNING'"
        )
        for run in open_runs:
            client.set_tag(run.info.run_id, tracking.STATE, "interrupted")
            client.set_terminated(run.info.run_id, status="KILLED")


def run_search(
    spec: SearchSpec, data, *, out: str | Path, tracking_uri: str, address: str | None = None, quiet: bool = False,
    resume: bool = False, shared_storage: str | None = None,
) -> dict:
    """Runs the whole search (or what an interrupted one still owes) and returns comparison.json's content.

    `shared_storage` is where trial checkpoints go when trials run on several nodes (see storage_path_for).
    """
    # Trials are logged to MLflow; Ray's own CSV/JSON loggers and console tables would duplicate it.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import optuna
    from ray import tune

    from .evaluate import evaluate_search
    from .export import publish, summarise
    from .pruning import make_scheduler
    from .searcher import DepthSearcher
    from .trainable import run_trial
    from .trial_runs import TrialRuns

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Results are read from the callback, not from Ray's result files, which are switched off above.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    out_dir = Path(out).resolve() / spec.name
    if resume and not out_dir.is_dir():
        raise ConfigError(f"nothing to resume: {out_dir} holds no search named {spec.name!r}")
    if not resume and out_dir.exists():
        log.info("replacing the earlier search in %s", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    client = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, spec.name)
    search_id, depth_runs = _open_runs(client, experiment_id, spec, resume=resume)
    # What Ray Tune is handed is pickled into its experiment folder: the study storage's URL, which
    # may hold a password, stays with the driver.
    shared_spec = spec.model_copy(update={"storage": None})
    scheduler = make_scheduler(spec)
    pruned = scheduler.pruned if scheduler is not None else set()
    callback = TrialRuns(client=client, experiment_id=experiment_id, spec=shared_spec, depth_runs=depth_runs, quiet=quiet, pruned=pruned)
    all_runs = [search_id, *depth_runs.values()]
    storage_path = storage_path_for(spec, out_dir, shared_storage)
    if not resume and shared_storage and "://" not in storage_path:
        shutil.rmtree(storage_path, ignore_errors=True)
    try:
        start_ray(address)
        check_resources(spec)
        studies = prepare_studies(spec, _storage(spec, out_dir), resume=resume)
        searcher = DepthSearcher(shared_spec, studies, metric="best_val_loss", pruned=pruned)
        owed = searcher.remaining()
        if owed:
            resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
            trainable = tune.with_resources(
                tune.with_parameters(run_trial, data=data, spec_json=shared_spec.model_dump_json()),
                resources,
            )
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler,
                    metric="best_val_loss",
                    mode="min",
                    num_samples=owed,
                    max_concurrent_trials=spec.resources.max_concurrent,
                    # A fresh worker per trial would pay torch's import every time.
                    reuse_actors=True,
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
                    storage_path=storage_path,
                    callbacks=[callback],
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            if not quiet:
                print(
                    f"{'resuming' if resume else 'searching'} {spec.name}: depths {spec.depths}, "
                    f"{spec.trials_per_depth} trials each ({owed} to run)",
                    file=sys.stderr,
                )
            # stdout is the command's answer (the table or comparison.json); Ray's chatter goes to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                tuner.fit()
            # Ray Tune ends fit() quietly on Ctrl-C; what is still owed tells an interrupted run apart.
            if (left := searcher.remaining()) > 0:
                raise SearchInterrupted(f"the search stopped with {left} trial(s) still to run")
        comparison = summarise(
            spec, studies, client=client, experiment_id=experiment_id, search_id=search_id,
            depth_runs=depth_runs, callback=callback, task=data.task, storage_path=storage_path,
        )
        if spec.evaluation.seeds:
            evaluate_search(
                spec, studies, comparison, data, client=client, experiment_id=experiment_id, depth_runs=depth_runs,
                search_id=search_id, storage_path=storage_path, quiet=quiet,
            )
        publish(comparison, out_dir, client=client, search_id=search_id)
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, SearchInterrupted))
        callback.close_open_runs()
        for run_id in all_runs:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED" if interrupted else "FAILED")
        raise
    for run_id in all_runs:
        client.set_terminated(run_id, status="FINISHED")
    return comparison


def _trial_name(trial) -> str:
    return f"d{trial.config['depth']}-t{trial.config['number']:02d}-{trial.trial_id}"


def _describe(spec: SearchSpec) -> str:
    return (
        f"Depths {', '.join(map(str, spec.depths))} of a stacked LSTM on {spec.dataset.name or Path(spec.dataset.csv).name}, "
        f"each tuned by its own Optuna study with {spec.trials_per_depth} trials."
    )


def _search_params(spec: SearchSpec) -> dict[str, Any]:
    ds = spec.dataset
    return {
        "dataset": ds.name or Path(ds.csv).name,
        "window": ds.window,
        "horizon": ds.horizon,
        "depths": ",".join(map(str, spec.depths)),
        "trials_per_depth": spec.trials_per_depth,
        "epochs": spec.train.epochs,
        "sampler": spec.sampler.kind,
        "seed": spec.seed,
        "space": json.dumps(spec.space.model_dump(mode="json")),
    }


def run_search_command(args) -> int:
    """The CLI's `search`: returns the exit status."""
    from .export import print_table

    spec = load_spec(args.spec, overrides=spec_overrides(args), confine=args.confine)
    if spec.storage is None and (url := os.environ.get(OPTUNA_STORAGE_ENV)):
        if "://" not in url:  # the value is not echoed: it may hold a password
            raise ConfigError(f"${OPTUNA_STORAGE_ENV}: expected a database URL like postgresql://user@host/db")
        spec.storage = url
    data = load_data(spec.dataset, base_dir=None)
    spec = match_widths(spec, input_size=data.input_size, output_size=data.output_size, task=data.task)
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    tracking.check_tracking(uri)
    address = args.address or os.environ.get("RAY_ADDRESS")
    check_ray_address(address)
    if not address:
        # Ray's single-machine mode: every Ray process listens on 127.0.0.1 only. Read when Ray is
        # first imported, so it is set before anything below imports it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        # stdout is the command's answer alone; whatever Ray prints while it runs goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            try:
                comparison = run_search(
                    spec, data, out=args.out, tracking_uri=uri, address=address, quiet=args.json, resume=args.resume,
                    shared_storage=args.storage_path or os.environ.get(STORAGE_PATH_ENV),
                )
            finally:
                import ray

                ray.shutdown()
    except (SearchInterrupted, KeyboardInterrupt) as exc:
        again = " ".join(shlex.quote(a) for a in ["stacktune", *sys.argv[1:]] if a != "--resume")
        print(f"error: {exc or 'interrupted'}; finished trials are kept. Continue with: {again} --resume", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print_table(comparison, out_dir=Path(args.out) / spec.name, tracking_uri=uri)
    return 0
