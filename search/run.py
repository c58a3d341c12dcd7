"""`stacktune search`: validate, connect, run every depth's study in one Ray Tune run, summarise."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import tracking
from .config import SearchSpec, parse, read_yaml
from .errors import ConfigError, UnreachableError
from .single import load_data
from .space import match_widths

log = logging.getLogger("stacktune")


def load_spec(path: str | Path, *, overrides: dict[str, Any] | None = None) -> SearchSpec:
    """Reads a search spec, applies command-line overrides, and anchors a CSV path to the spec's folder."""
    path = Path(path)
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
    spec = parse(SearchSpec, raw, source=str(path))
    if spec.dataset.csv:
        spec.dataset.csv = str((path.resolve().parent / spec.dataset.csv).resolve())
    return spec


def check_ray_address(address: str | None) -> None:
    """Raises UnreachableError when a named Ray cluster does not accept connections."""
    if not address or address == "auto":
        return
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


def _storage(spec: SearchSpec, out_dir: Path):
    """Optuna storage that outlives the process: the spec's RDB URL, else a journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if spec.storage:
        return optuna.storages.RDBStorage(spec.storage)
    return optuna.storages.JournalStorage(JournalFileBackend(str(out_dir / "optuna.journal")))


def create_studies(spec: SearchSpec, storage) -> dict:
    """One fresh study per depth; an earlier search of the same name is replaced."""
    import optuna

    from .searcher import make_sampler, study_name

    studies = {}
    for depth in spec.depths:
        name = study_name(spec.name, depth)
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
        study = optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(spec, depth), direction="minimize")
        study.set_user_attr("search", spec.name)
        study.set_user_attr("depth", depth)
        studies[depth] = study
    return studies


def run_search(spec: SearchSpec, data, *, out: str | Path, tracking_uri: str, address: str | None = None, quiet: bool = False) -> dict:
    """Runs the whole search and returns comparison.json's content; writes the exports."""
    # Trials are logged to MLflow; Ray's own CSV/JSON loggers and console tables would duplicate it.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import optuna
    from ray import tune

    from .evaluate import evaluate_search
    from .export import publish, summarise
    from .searcher import DepthSearcher
    from .trainable import run_trial
    from .trial_runs import TrialRuns

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Results are read from the callback, not from Ray's result files, which are switched off above.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    out_dir = Path(out).resolve() / spec.name
    if out_dir.exists():
        log.info("replacing the earlier search in %s", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    client = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, spec.name)
    search_run = client.create_run(
        experiment_id,
        run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={tracking.ROLE: "search", tracking.SEARCH: spec.name, "mlflow.note.content": _describe(spec)},
    )
    search_id = search_run.info.run_id
    tracking.log_batch(client, search_id, params=tracking.as_params(_search_params(spec)))
    depth_runs = {
        d: client.create_run(
            experiment_id,
            run_name=f"depth-{d}",
            tags={"mlflow.parentRunId": search_id, tracking.ROLE: "depth", tracking.DEPTH: str(d), tracking.SEARCH: spec.name},
        ).info.run_id
        for d in spec.depths
    }
    callback = TrialRuns(client=client, experiment_id=experiment_id, spec=spec, depth_runs=depth_runs, quiet=quiet)
    all_runs = [search_id, *depth_runs.values()]
    try:
        start_ray(address)
        studies = create_studies(spec, _storage(spec, out_dir))
        resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, spec_json=spec.model_dump_json()), resources
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=DepthSearcher(spec, studies, metric="best_val_loss"),
                metric="best_val_loss",
                mode="min",
                num_samples=len(spec.depths) * spec.trials_per_depth,
                max_concurrent_trials=spec.resources.max_concurrent,
                # A fresh worker per trial would pay torch's import every time.
                reuse_actors=True,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(out_dir / "ray"),
                callbacks=[callback],
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=1),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        if not quiet:
            total = len(spec.depths) * spec.trials_per_depth
            print(f"searching {spec.name}: depths {spec.depths}, {spec.trials_per_depth} trials each ({total} in all)", file=sys.stderr)
        # stdout is the command's answer (the table or comparison.json); Ray's chatter goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
        comparison = summarise(
            spec, studies, client=client, experiment_id=experiment_id, search_id=search_id,
            depth_runs=depth_runs, callback=callback, task=data.task,
        )
        if spec.evaluation.seeds:
            evaluate_search(
                spec, studies, comparison, data, client=client, experiment_id=experiment_id, depth_runs=depth_runs,
                search_id=search_id, storage_path=str(out_dir / "ray"), quiet=quiet,
            )
        publish(comparison, out_dir, client=client, search_id=search_id)
    except BaseException:
        callback.close_open_runs()
        for run_id in all_runs:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "FAILED")
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

    overrides = {
        "name": args.name, "depths": args.depths, "trials_per_depth": args.trials_per_depth,
        "train.epochs": args.epochs, "evaluation.seeds": args.seeds,
    }
    spec = load_spec(args.spec, overrides=overrides)
    data = load_data(spec.dataset, base_dir=None)
    spec = match_widths(spec, input_size=data.input_size, output_size=data.output_size, task=data.task)
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    tracking.check_tracking(uri)
    address = args.address or os.environ.get("RAY_ADDRESS")
    check_ray_address(address)
    comparison = run_search(spec, data, out=args.out, tracking_uri=uri, address=address, quiet=args.json)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print_table(comparison, out_dir=Path(args.out) / spec.name, tracking_uri=uri)
    return 0
