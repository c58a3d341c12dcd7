"""Trials per GPU-hour as 1, 2, 4 and 8 trials share each GPU (fractional `resources.gpus_per_trial`).

The same stacktune search (run_search, evaluation off, a fixed number of trials of one fixed
model and dataset) runs once per setting on a local Ray that holds the machine's GPUs and CPUs:
gpus_per_trial 1, 1/2, 1/4, 1/8, with the CPUs split evenly over the trials that fit at once.
The figure is completed trials per hour of Tuner.fit's wall clock, per GPU; small LSTMs leave
most of a GPU idle between kernel launches, so sharing it should finish more trials per hour.

Without a GPU (`--device cpu`, a smoke run) Ray is still given one (declared, not real), but
trials train on the CPU: run_trial trains on CUDA whenever gpus_per_trial > 0, so each setting
asks for CPUs only (cores / k per trial), which keeps the same k trials running at once.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import common

PER_GPU = (1, 2, 4, 8)
SHARING_TITLE = "trials per GPU-hour, 2/4/8 trials per GPU vs 1"
SHARING_GOAL = "ratio > 1 at 2, 4, 8"
PROBE_LENGTH = 2000
MIN_LENGTH, MAX_LENGTH = 500, 500_000
BATCH = 64


@dataclass(frozen=True)
class Size:
    """The search every setting runs, and how often."""

    trials_per_gpu: int  # a multiple of 8, so that every slot of the 8-per-GPU setting has whole waves
    epochs: int
    trial_seconds: float  # training seconds of one trial alone on the device: sets the dataset's length
    repeats: int
    depth: int
    width: int


SIZES = {
    ("cuda", False): Size(32, 8, 4.0, 2, 2, 128),
    ("cuda", True): Size(16, 6, 2.0, 1, 2, 128),
    # the smoke run: every code path on the CPU, on the shortest series (MIN_LENGTH)
    ("cpu", False): Size(8, 2, 0.01, 1, 1, 16),
    ("cpu", True): Size(8, 2, 0.01, 1, 1, 16),
}


def _spec(name: str, size: Size, length: int, trials: int, resources: dict[str, float]):
    return common.search_spec(
        name,
        length=length,
        depths=[size.depth],
        trials_per_depth=trials,
        epochs=size.epochs,
        units=[size.width],
        batch_size=BATCH,
        resources=resources,
    )


def _resources(k: int, device: str, cores: int, gpus: int) -> dict[str, float]:
    """k trials per GPU: a 1/k GPU share each (none in the smoke run) and the CPUs split evenly over the slots."""
    # rounded down to Ray's 1e-4 resolution, so that every slot still fits
    cpus = math.floor(cores / (gpus * k) * 1000) / 1000
    return {"cpus_per_trial": cpus, "gpus_per_trial": 1 / k if device == "cuda" else 0.0}


def _length_for(size: Size, device: str) -> int:
    """The sine length whose trials train for about size.trial_seconds alone on `device`, from one timed epoch."""
    from stacktune.models import fit
    from stacktune.search.spec.convert import build, to_train_config

    spec = _spec("gpu-probe", size, PROBE_LENGTH, 1, {})
    data = common.load_dataset(spec)
    params = {f"units_{i}": size.width for i in range(size.depth)}
    params.update(lr=1e-2, dropout=0.0, weight_decay=0.0, batch_size=BATCH)
    model, settings = build(to_train_config(spec, params, depth=size.depth), data, device=device)
    per_epoch = fit(model, data, settings).epochs[-1].seconds  # the second epoch: warmed up
    length = int(round(PROBE_LENGTH * size.trial_seconds / (size.epochs * per_epoch), -2))
    return max(MIN_LENGTH, min(MAX_LENGTH, length))


def start_ray(cpus: int, gpus: int) -> None:
    """A local Ray on 127.0.0.1 holding `cpus` CPUs and `gpus` GPUs; an already running one is kept if it matches."""
    import ray

    if ray.is_initialized():
        have = ray.cluster_resources()
        if have.get("CPU") == cpus and have.get("GPU", 0) == gpus:
            return
        ray.shutdown()
    ray.init(
        num_cpus=cpus,
        num_gpus=gpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def _search(spec, data, workdir: Path) -> dict[str, float]:
    """One run_search: completed trials, their training seconds, Tuner.fit's seconds and the whole call's."""
    from stacktune.search.pipeline import run_search

    with common.saved_environ(), common.timed_tuner_fit() as spans, common.quiet_output():
        start = time.perf_counter()
        comparison = run_search(spec, data, out=workdir / "runs", tracking_uri=f"sqlite:///{workdir}/mlflow.db")
        total = time.perf_counter() - start
    entry = comparison.entry(spec.depths[0])
    return {
        "completed": entry.trials.completed or 0,
        "train_seconds": entry.train_seconds,
        "fit_seconds": spans[0]["seconds"],
        "total_seconds": total,
    }


def _share(k: int, resources: dict[str, float], device: str) -> str:
    """How a setting's trials are given their share, for the row."""
    cpus = resources["cpus_per_trial"]
    cpus_text = f"{cpus:g} CPU{'' if cpus == 1 else 's'}"
    if device == "cuda":
        return f"gpus_per_trial {resources['gpus_per_trial']:g}, {cpus_text} each"
    return f"smoke: {cpus_text} per trial instead of gpus_per_trial {1 / k:g}"


def measure(quick: bool, device: str, workdir: Path) -> dict[str, Any]:
    """Trials per GPU-hour at 1, 2, 4 and 8 trials per GPU, the settings alternated; ratios to 1 per GPU."""
    import torch
    from mlflow.tracking import MlflowClient

    size = SIZES[(device, quick)]
    cores = common.usable_cores()
    gpus = torch.cuda.device_count() if device == "cuda" else 1
    trials = size.trials_per_gpu * gpus
    workdir.mkdir(parents=True, exist_ok=True)
    length = _length_for(size, device)
    common.log(f"gpu sharing: sine length {length} for {size.trial_seconds:g} s trials on {device}")
    data = common.load_dataset(_spec("gpu-data", size, length, 1, {}))
    resources = {k: _resources(k, device, cores, gpus) for k in PER_GPU}
    names = itertools.count()

    def run(k: int, count: int) -> dict[str, float]:
        common.log(f"gpu sharing: {count} trials, {k} per GPU ({_share(k, resources[k], device)})")
        spec = _spec(f"gpu-share-{k}-{next(names)}", size, length, count, resources[k])
        return _search(spec, data, workdir)

    start_ray(cores, gpus)
    try:
        # the schema migration, and on a GPU the first search's one-off costs in this process, stay out of the timings
        MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db").search_experiments()
        if device == "cuda":
            run(1, gpus)
        timed = common.interleaved({k: lambda k=k: run(k, trials) for k in PER_GPU}, size.repeats)
    finally:
        common.stop_ray()

    per_gpu_hour = {k: [3600 * r["completed"] / r["fit_seconds"] / gpus for r in runs] for k, runs in timed.items()}
    figures: dict[str, Any] = {
        "device": device,
        "gpus": gpus,
        "cpus": cores,
        "trials": trials,
        "dataset": {"name": "sine", "length": length, "window": 16},
        "model": {"depth": size.depth, "width": size.width, "epochs": size.epochs, "batch_size": BATCH},
        "repeats": size.repeats,
        "settings": {},
    }
    if device == "cpu":
        figures["smoke"] = (
            "Ray holds one declared GPU that no trial uses, and trials train on the CPU: each setting asks for "
            "cores/k CPUs per trial instead of a 1/k GPU share, so the same k trials run at once"
        )
    rows, ratios = [], {}
    for k, runs in timed.items():
        ratio = common.summary([a / b for a, b in zip(per_gpu_hour[k], per_gpu_hour[1], strict=True)])
        ratios[k] = ratio["median"]
        trial_s = common.summary([r["train_seconds"] / max(r["completed"], 1) for r in runs])
        figures["settings"][k] = {
            "resources": resources[k],
            "trials_per_gpu_hour": common.summary(per_gpu_hour[k]),
            "trials_per_gpu_hour_whole_call": common.summary(
                [3600 * r["completed"] / r["total_seconds"] / gpus for r in runs]
            ),
            "train_seconds_per_trial": trial_s,
            "ratio_to_1": ratio,
            "runs": runs,
        }
        rows.append(
            common.row(
                "gpu",
                f"trials per GPU-hour, {k} per GPU ({_share(k, resources[k], device)}; "
                f"{trial_s['median']:.2g} s trials)",
                common.summary(per_gpu_hour[k])["median"],
                common.summary(per_gpu_hour[1])["median"],
                ratio=ratio["median"],
                goal="ratio > 1" if k > 1 else "",
                met=ratio["median"] > 1 if k > 1 else None,
            )
        )
    shared = [ratios[k] for k in PER_GPU if k > 1]
    rows.append(
        common.row(
            "gpu",
            f"{SHARING_TITLE} (the least ratio)",
            None,
            None,
            ratio=min(shared),
            goal=SHARING_GOAL,
            met=all(r > 1 for r in shared),
        )
    )
    return {"figures": figures, "rows": rows}
