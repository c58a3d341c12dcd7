"""`stacktune train`: one configuration, trained once and logged as one MLflow run."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from ..engine.trainable import require_precision
from ..errors import SearchInterrupted, StacktuneError
from ..spec.convert import build, config_yaml, flat_params
from ..spec.loading import load_data, parse, read_overridden
from ..spec.schema import TrainConfig
from ..tracking import store, tags

log = logging.getLogger("stacktune")


def run_train(config_path: str, *, seed: int | None = None, tracking_uri: str | None = None) -> dict:
    """Trains the configuration in `config_path`, logs one MLflow run and returns the summary."""
    path = Path(config_path)
    # The --seed override is validated with the file, so that it meets the same bounds.
    cfg = parse(TrainConfig, read_overridden(path, {"train.seed": seed}), source=str(path))
    require_precision(cfg.train.precision, "cpu")  # `train` runs on this machine's CPU (see build)
    data = load_data(cfg.dataset, base_dir=path.resolve().parent)
    uri = store.resolve_tracking_uri(tracking_uri)
    store.check_tracking(uri)

    from stacktune.models import fit

    with _stopped_by_signals():
        return _train(cfg, data, path=path, uri=uri, fit=fit)


def _train(cfg: TrainConfig, data, *, path: Path, uri: str, fit) -> dict:
    """Creates the run, trains, logs the result and ends the run: KILLED when a stop signal or Ctrl-C ended
    training, FAILED on an error."""
    client = store.client(uri)
    experiment_id = store.ensure_experiment(client, "stacktune-train")
    run = client.create_run(
        experiment_id,
        run_name=f"train-{path.stem}-s{cfg.train.seed}",
        tags={tags.ROLE: tags.ROLE_TRAIN, "mlflow.source.name": str(path)},
    )
    run_id = run.info.run_id
    started = time.perf_counter()
    try:
        model_cfg, settings = build(cfg, data)
        store.log_batch(client, run_id, params=store.as_params(flat_params(cfg)))
        result = fit(
            model_cfg,
            data,
            settings,
            on_epoch=lambda e: log.info("epoch %d  train_loss %.5f  val_loss %.5f", e.epoch, e.train_loss, e.val_loss),
        )
        seconds = time.perf_counter() - started
        summary = _build_summary(result, data, seconds=seconds, run_id=run_id)
        _log_result(client, run_id, result, summary, cfg)
    except (KeyboardInterrupt, SearchInterrupted):
        client.set_terminated(run_id, status="KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    if result.state == "diverged":
        client.set_terminated(run_id, status="FAILED")
        raise StacktuneError(f"training diverged: {result.reason}")
    client.set_terminated(run_id, status="FINISHED")
    return summary


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """While training, SIGINT, SIGTERM and SIGHUP raise SearchInterrupted (exit 130, 143, 129), so the run is ended
    as KILLED and the command says why in one line; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame) -> None:
        raise SearchInterrupted.of(signum)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _build_summary(result, data, *, seconds: float, run_id: str) -> dict:
    """Evaluates the trained model on the test and validation splits; returns the run's summary."""
    from stacktune.models import evaluate

    test = evaluate(result.model, data.test, task=data.task)
    val = evaluate(result.model, data.val, task=data.task)
    return {
        "val_loss": result.best_val_loss,
        "test_loss": test["loss"],
        **(
            {"val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"]}
            if data.task == "classification"
            else {}
        ),
        "params": result.params,
        "seconds": round(seconds, 3),
        "epochs": len(result.epochs),
        "best_epoch": result.best_epoch,
        "state": result.state,
        "mlflow_run_id": run_id,
    }


def _log_result(client, run_id: str, result, summary: dict, cfg: TrainConfig) -> None:
    """Logs the per-epoch and final metrics, the state tag, and the model and its config as artifacts to the run."""
    from stacktune.models import save_model

    metrics = []
    for e in result.epochs:
        metrics += store.epoch_metrics(
            e.epoch, {"train_loss": e.train_loss, "val_loss": e.val_loss, "val_accuracy": e.val_accuracy}
        )
    final = {k: v for k, v in summary.items() if k.endswith(("loss", "accuracy"))}
    metrics += store.epoch_metrics(
        len(result.epochs), {**{f"final_{k}": v for k, v in final.items()}, "n_params": result.params}
    )
    store.log_batch(client, run_id, metrics=metrics, tags=store.as_tags({tags.STATE: result.state}))
    with tempfile.TemporaryDirectory() as tmp:
        save_model(result.model, Path(tmp) / "model.pt")
        (Path(tmp) / "config.yaml").write_text(config_yaml(cfg))
        client.log_artifacts(run_id, tmp)


def print_summary(summary: dict, *, as_json: bool) -> None:
    """The result on stdout: one JSON object, or a few readable lines."""
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{key:>14}  {shown}")
