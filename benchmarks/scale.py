"""Cluster scale: how busy a 100-slot cluster's workers are kept by stacktune's whole driver.

stacktune's whole driver runs (run_search: per-depth Optuna studies in the journal storage, the
DepthSearcher, the TrialRuns MLflow callback, Ray Tune) on a local Ray that claims 100 logical
CPUs, 1 per trial, so 100 trials can run at once; run_trial is swapped for a trial that sleeps 1 s
per epoch for 10 epochs and reports each epoch and a final summary as run_trial does (1,000
trials; quick: 12 trials of 10 x 0.1 s epochs on 4 logical CPUs). The search runs twice (quick: once), each on
a fresh Ray: as stacktune runs it (Ray Tune keeps one trial pending for a searcher of its own), then
with one pending trial allowed per slot (TUNE_MAX_PENDING_TRIALS_PG).

busy = sum over trials of their own run time / (slots x seconds of Tuner.fit()). A trial's own run
time is the seconds inside its epochs (the sleeps, timed by the trial, as run_trial's train_seconds
times fit's epochs): Ray Tune holds a function trial at each report until the driver has taken the
result, so a trial's time from entry to return includes waiting on the driver (that whole-trial
figure is kept in the JSON as busy_whole_trials). The denominator therefore charges Ray Tune's
set-up, starting the worker processes, each worker's import of Ray Tune and stacktune's contracts,
fetching the dataset, handing results over, the driver's scheduling, the searcher and the MLflow
callback, and the drain at the end. The steady-state figure is the same ratio over the middle of
the run, from the moment every slot has had a trial start (the ramp-up is over) until the last
trial starts (the drain begins), counting only the epoch seconds inside that window.

What this machine cannot show: its 2 real cores are shared by the workers, Ray's own processes
and the driver, so starting 100 workers (each a Python process importing Ray) takes minutes here,
and the idle workers' polling takes CPU the driver would have to itself on a cluster. The sleeping
trial does not import torch, so a worker costs less memory than a real one (about 130 MB here),
it writes no checkpoints, and it does not train. The driver's CPU per trial (time.process_time of
this process over run_search, all its threads) is the figure least affected by the machine.
Memory used (MemTotal - MemAvailable) is sampled every second during each search.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import common

CLUSTER_CPUS = 100
QUICK_CPUS = 4
RAY_CPUS = CLUSTER_CPUS
DEPTHS = [1, 2, 3, 4]
EPOCHS = 10
# Goal: a large cluster's workers are not left waiting on the driver.
BUSY_GOAL = 0.90


def make_sleep_trial(*, epochs: int, seconds: float, stamps: Path) -> Callable[..., None]:
    """A stand-in for run_trial that sleeps `seconds` per epoch, reports every epoch and a final summary shaped like
    run_trial's (TrialResult), and writes its own start and end (time.time) to a file in `stamps`.

    A closure, so Ray pickles it whole: a worker imports only Ray Tune and stacktune's contracts."""
    folder = str(stamps)

    def sleep_trial(config: dict[str, Any], *, data=None, spec_json: str = "") -> None:
        import math
        import random
        import time

        import ray
        from ray import tune

        from stacktune.search.contracts import TrialResult

        start = time.time()
        node_id = ray.get_runtime_context().get_node_id()
        # a smooth function of the sample plus noise, falling with the epochs, so TPE has something to model
        floor = (math.log10(max(float(config["params"]["lr"]), 1e-12)) + 2.0) ** 2 + random.random() * 0.01
        best, best_epoch, worked = math.inf, 0, []
        for epoch in range(1, epochs + 1):
            began = time.time()
            time.sleep(seconds)
            worked.append((began, time.time()))
            val = floor + 1.0 / epoch
            if val < best:
                best, best_epoch = val, epoch
            # as run_trial: the seconds inside epochs, not the time spent handing results to Ray Tune
            tune.report(
                TrialResult(
                    epoch=epoch,
                    train_loss=val * 0.9,
                    val_loss=val,
                    best_val_loss=best,
                    train_seconds=sum(b - a for a, b in worked),
                    node_id=node_id,
                ).to_report()
            )
        tune.report(
            TrialResult(
                final=True,
                epoch=epochs,
                best_val_loss=best,
                best_epoch=best_epoch,
                params=100,
                state="completed",
                train_seconds=sum(b - a for a, b in worked),
                node_id=node_id,
            ).to_report()
        )
        with open(f"{folder}/{config['depth']}-{config['number']}.json", "w") as f:
            json.dump({"start": start, "end": time.time(), "epochs": worked}, f)

    return sleep_trial


def busy_fraction(spans: list[tuple[float, float]], slots: int, begin: float, end: float) -> float:
    """The share of `slots` x [begin, end] covered by the trials' (start, end) spans."""
    if end <= begin:
        return float("nan")
    covered = sum(max(0.0, min(b, end) - max(a, begin)) for a, b in spans)
    return covered / (slots * (end - begin))


def steady_window(spans: list[tuple[float, float]], slots: int) -> tuple[float, float]:
    """From the start of the `slots`-th trial to start (ramp-up over) to the start of the last one (drain begins)."""
    starts = sorted(a for a, _ in spans)
    if len(starts) <= slots:
        return (starts[-1], starts[-1]) if starts else (0.0, 0.0)
    return starts[slots - 1], starts[-1]


class MemorySampler:
    """Samples the machine's used memory (MemTotal - MemAvailable, GiB) every `every` seconds in a thread."""

    def __init__(self, every: float = 1.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def used_gib() -> float:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
        return (info["MemTotal"] - info["MemAvailable"]) / 1024**2

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(self.used_gib())

    def __enter__(self) -> MemorySampler:
        self.samples.append(self.used_gib())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _spec(name: str, trials: int):
    """stacktune's default space (one width per layer from [16, 32, 64, 128], log-uniform lr) over DEPTHS, 1 CPU a
    trial, evaluation off, on a tiny sine."""
    return common.search_spec(
        name,
        length=2000,
        depths=DEPTHS,
        trials_per_depth=max(1, trials // len(DEPTHS)),
        epochs=EPOCHS,
        units=[16, 32, 64, 128],
        lr=(1e-4, 1e-2),
        sampler={"n_startup_trials": 5},
        resources={"cpus_per_trial": 1},
    )


def measure(trials: int, slots: int, seconds: float, workdir: Path, *, pending: int | None = None) -> dict[str, Any]:
    """One whole-driver search of `trials` sleeping trials on `slots` logical CPUs, and its figures; with `pending`,
    Ray Tune may hold that many trials waiting for a worker at once (TUNE_MAX_PENDING_TRIALS_PG)."""
    from stacktune.search.engine import trainable
    from stacktune.search.pipeline import run_search

    tag = f"pending{pending}" if pending else "default"
    spec = _spec(f"scale-{trials}-{tag}", trials)
    data = common.load_dataset(spec)
    stamps = workdir / f"stamps-{tag}"
    stamps.mkdir(parents=True, exist_ok=True)
    # a fresh Ray for each search: workers left idle by an earlier one would shorten the next one's ramp-up
    common.stop_ray()
    common.start_ray(slots)
    memory_before = MemorySampler.used_gib()
    original = trainable.run_trial
    trainable.run_trial = make_sleep_trial(epochs=EPOCHS, seconds=seconds, stamps=stamps)
    try:
        with (
            common.saved_environ(),
            common.timed_tuner_fit() as fits,
            common.quiet_output(),
            MemorySampler() as memory,
        ):
            if pending:
                os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(pending)
            cpu0, start = time.process_time(), time.perf_counter()
            run_search(
                spec,
                data,
                out=workdir / f"runs-{tag}",
                tracking_uri=f"sqlite:///{workdir}/mlflow.db",
            )
            total, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        trainable.run_trial = original
    n = spec.trials_per_depth * len(spec.depths)
    records = [json.loads(p.read_text()) for p in stamps.glob("*.json")]
    spans = [(r["start"], r["end"]) for r in records]
    work = [tuple(e) for r in records for e in r["epochs"]]
    fit_start, fit_seconds = fits[0]["wall_start"], fits[0]["seconds"]
    begin, end = steady_window(spans, slots)
    starts = sorted(a for a, _ in spans)
    return {
        "trials": n,
        "trials_recorded": len(records),
        "slots": slots,
        "work_seconds_per_trial_planned": EPOCHS * seconds,
        "work_seconds_per_trial": sum(b - a for a, b in work) / max(1, len(records)),
        "trial_seconds_per_trial": sum(b - a for a, b in spans) / max(1, len(records)),
        "fit_seconds": fit_seconds,
        "total_seconds": total,
        "busy": sum(b - a for a, b in work) / (slots * fit_seconds),
        "busy_whole_trials": sum(b - a for a, b in spans) / (slots * fit_seconds),
        "steady_busy": busy_fraction(work, slots, begin, end),
        "steady_seconds": end - begin,
        "first_trial_start_s": starts[0] - fit_start if starts else float("nan"),
        "ramp_up_s": begin - fit_start,
        "drain_s": fit_start + fit_seconds - end,
        "driver_cpu_ms_per_trial": 1000 * cpu / n,
        "memory_gib_before": memory_before,
        "memory_gib_peak": max(memory.samples),
    }


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """The busy shares, the driver's CPU per trial and the memory of whole-driver searches at cluster scale: as
    stacktune runs today, then with Ray Tune allowed one pending trial per slot."""
    trials, slots, seconds = (12, QUICK_CPUS, 0.1) if quick else (1000, CLUSTER_CPUS, 1.0)
    workdir.mkdir(parents=True, exist_ok=True)
    runs = {}
    # the wider setting first: a failure there shows in minutes, not after the long default run (the quick run, a
    # smoke test of the benchmark, runs the default only)
    for pending in (None,) if quick else (slots, None):
        common.log(
            f"scale: {trials} trials of {EPOCHS} x {seconds:g} s on {slots} slots, pending trials {pending or 1}"
        )
        runs[pending or 1] = measure(trials, slots, seconds, workdir, pending=pending)
    common.stop_ray()
    usual, wider = runs[1], runs.get(slots)
    label = f"{trials} trials of {EPOCHS * seconds:g} s on {slots} slots"
    rows = [
        common.row(
            "scale",
            f"busy share of worker time, {label} (Tuner.fit)",
            usual["busy"],
            None,
            goal=f">= {BUSY_GOAL:g}",
            met=None if quick else usual["busy"] >= BUSY_GOAL,
        ),
        common.row(
            "scale",
            f"busy share, steady state ({usual['steady_seconds']:.0f} s after {usual['ramp_up_s']:.0f} s of "
            f"ramp-up, before {usual['drain_s']:.0f} s of drain)",
            usual["steady_busy"],
            None,
        ),
        common.row("scale", f"driver CPU ms/trial, {trials} trials", usual["driver_cpu_ms_per_trial"], None, unit="ms"),
        common.row(
            "scale",
            f"peak memory used, GiB ({usual['memory_gib_before']:.1f} before the search)",
            usual["memory_gib_peak"],
            None,
            unit="GiB",
        ),
    ]
    # Ray Tune lets a searcher of its own (stacktune's DepthSearcher) keep one trial pending: the run is the same
    # with as many pending trials as slots (TUNE_MAX_PENDING_TRIALS_PG), against the default above.
    for key, figure, unit in (
        ()
        if wider is None
        else (
            ("busy", "busy share (Tuner.fit)", ""),
            ("steady_busy", "busy share, steady state", ""),
            ("driver_cpu_ms_per_trial", "driver CPU ms/trial", "ms"),
            ("memory_gib_peak", "peak memory used, GiB", "GiB"),
        )
    ):
        rows.append(
            common.row(
                "scale",
                f"{figure}, {slots} pending trials allowed instead of 1 (vs 1)",
                wider[key],
                usual[key],
                unit=unit,
            )
        )
    figures = {"pending_1": usual} | ({f"pending_{slots}": wider} if wider is not None else {})
    return {"figures": figures, "rows": rows}
