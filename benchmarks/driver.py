"""Driver scale: how many do-nothing trials per second the search driver starts and finishes.

Part 1 runs stacktune's whole driver (run_search: DepthSearcher over per-depth Optuna studies
in the journal storage, the TrialRuns MLflow callback, Ray Tune) with run_trial swapped for a
trial that only reports a final result, on a local Ray that claims 128 logical CPUs, 8 per trial
so that 16 trials run at once; the plain Tuner + OptunaSearch + MLflowLoggerCallback wiring runs
the same way. The driver's own CPU time per trial is reported too: it is the least sensitive to
other load on the machine. Part 2 times one depth's
searcher step (DepthSearcher.suggest + on_trial_complete: Optuna ask, suggest, tell and the
user attributes, journal storage, TPE as make_sampler configures it) as the study grows.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

from . import common

CLUSTER_CPUS = 128
RAY_CPUS = CLUSTER_CPUS
# Trials running at once, bounded by the CPUs each trial claims: enough that the driver, not a
# trial's round trip, is the bottleneck (8 were not); more would only boot more worker
# processes, which on 2 real cores starve the driver being measured.
CONCURRENT = 16
CPUS_PER_TRIAL = CLUSTER_CPUS // CONCURRENT
DEPTHS = [1, 2, 3, 4]


# Goals at the largest size (1,000 trials; 5,000 in one study for the searcher): the driver must not be what
# limits a large cluster.
TRIALS_PER_SECOND_GOAL = 20.0
DRIVER_CPU_GOAL_MS = 15.0
SEARCHER_GOAL_MS = 20.0


def _goal(key: str, value: float) -> tuple[str, bool | None]:
    """The goal of one whole-driver figure and whether `value` meets it."""
    if key == "trials_per_second":
        return f">= {TRIALS_PER_SECOND_GOAL:g} trials/s", value >= TRIALS_PER_SECOND_GOAL
    if key == "driver_cpu_ms_per_trial":
        return f"<= {DRIVER_CPU_GOAL_MS:g} ms", value <= DRIVER_CPU_GOAL_MS
    return "", None


def _spec(name: str, trials: int, *, limiter: bool = False):
    """stacktune's default space (one width per layer from [16, 32, 64, 128], log-uniform lr) over DEPTHS.

    With `limiter`, concurrency is capped by resources.max_concurrent instead of by CPUs per trial.
    """
    per_depth = max(1, trials // len(DEPTHS))
    resources = {"max_concurrent": CONCURRENT} if limiter else {"cpus_per_trial": CPUS_PER_TRIAL}
    return common.search_spec(
        name,
        length=2000,
        depths=DEPTHS,
        trials_per_depth=per_depth,
        epochs=1,
        units=[16, 32, 64, 128],
        lr=(1e-4, 1e-2),
        sampler={"n_startup_trials": 5},
        resources=resources,
    )


@contextlib.contextmanager
def _noop_run_trial():
    """Swaps stacktune's trial function for one that trains nothing, for the duration of the block."""
    from stacktune.search.engine import trainable

    from .plain import noop_stacktune_trial

    original = trainable.run_trial
    trainable.run_trial = noop_stacktune_trial
    try:
        yield
    finally:
        trainable.run_trial = original


def _completions(spec, journal: Path) -> list[float]:
    """Wall-clock completion times of every finished trial of the search, sorted."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from stacktune.search.engine.studies import study_name

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    stamps = []
    for depth in spec.depths:
        study = optuna.load_study(study_name=study_name(spec.name, depth), storage=storage)
        stamps += [t.datetime_complete.timestamp() for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    return sorted(stamps)


def _steady_rate(stamps: list[float]) -> float:
    """Trials per second over the second half of the completions: after every worker has started."""
    if len(stamps) < 4:
        return math.nan
    half = stamps[len(stamps) // 2 :]
    return (len(half) - 1) / max(half[-1] - half[0], 1e-9)


def _stacktune(
    trials: int, workdir: Path, data, rep: int, *, limiter: bool = False, tracking_uri: str | None = None
) -> dict[str, float]:
    """`tracking_uri`: an MLflow server's, instead of the SQLite store in `workdir`."""
    from stacktune.search.pipeline import run_search

    tag = f"{'-limiter' if limiter else ''}{'-server' if tracking_uri else ''}"
    spec = _spec(f"driver-{trials}-{rep}{tag}", trials, limiter=limiter)
    with common.saved_environ(), common.timed_tuner_fit() as spans, common.quiet_output(), _noop_run_trial():
        cpu0, start = time.process_time(), time.perf_counter()
        run_search(
            spec, data, out=workdir / "stacktune-runs", tracking_uri=tracking_uri or f"sqlite:///{workdir}/mlflow.db"
        )
        total, cpu = time.perf_counter() - start, time.process_time() - cpu0
    fit_seconds = spans[0]["seconds"]
    n = spec.trials_per_depth * len(spec.depths)
    stamps = _completions(spec, workdir / "stacktune-runs" / spec.name / "optuna.journal")
    return {
        "trials": n,
        "fit_seconds": fit_seconds,
        "total_seconds": total,
        "trials_per_second": n / fit_seconds,
        "steady_trials_per_second": _steady_rate(stamps),
        "driver_cpu_ms_per_trial": 1000 * cpu / n,
    }


def _plain(trials: int, workdir: Path, rep: int) -> dict[str, float]:
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    from .plain import noop_trial

    name = f"plain-driver-{trials}-{rep}"
    n = (trials // len(DEPTHS)) * len(DEPTHS)
    completions: list[float] = []

    class Stamps(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            completions.append(time.time())

    with common.saved_environ(), common.quiet_output():
        tuner = tune.Tuner(
            tune.with_resources(noop_trial, {"cpu": CPUS_PER_TRIAL}),
            param_space={
                "depth": tune.choice(DEPTHS),
                "units": tune.choice([16, 32, 64, 128]),
                "lr": tune.loguniform(1e-4, 1e-2),
            },
            # actors are reused as in stacktune, so both sides start the same number of workers
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(seed=0), metric="val_loss", mode="min", num_samples=n, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(workdir / "plain-ray"),
                verbose=0,
                callbacks=[
                    MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/plain-mlflow.db", experiment_name=name),
                    Stamps(),
                ],
            ),
        )
        cpu0, start = time.process_time(), time.perf_counter()
        tuner.fit()
        fit, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "trials": n,
        "fit_seconds": fit,
        "trials_per_second": n / fit,
        "steady_trials_per_second": _steady_rate(sorted(completions)),
        "driver_cpu_ms_per_trial": 1000 * cpu / n,
    }


def searcher_step_costs(sizes: list[int], workdir: Path, *, sampler: str = "tpe") -> dict[str, Any]:
    """Milliseconds per DepthSearcher suggest + on_trial_complete at each study size, and the log-log slope.

    `sampler: random` runs the same steps with Optuna's random sampler: the storage and the searcher alone, so that
    the difference is what TPE itself costs as the study grows."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from stacktune.search.engine.searcher import DepthSearcher
    from stacktune.search.engine.studies import make_sampler, study_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = max(sizes)
    spec = _spec("searcher-step", len(DEPTHS)).model_copy(update={"depths": [2], "trials_per_depth": total})
    spec = spec.model_copy(update={"sampler": spec.sampler.model_copy(update={"kind": sampler})})
    journal = workdir / f"searcher-step-{sampler}.journal"
    journal.unlink(missing_ok=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(
        study_name=study_name(spec.name, 2), storage=storage, sampler=make_sampler(spec, 2), direction="minimize"
    )
    searcher = DepthSearcher(spec, {2: study})
    seconds = []
    for i in range(total):
        start = time.perf_counter()
        config = searcher.suggest(f"t{i}")
        loss = (math.log10(config["params"]["lr"]) + 3.0) ** 2 + 0.01 * config["params"]["units_0"] / 128
        searcher.on_trial_complete(
            f"t{i}",
            {
                "final": True,
                "epoch": 1,
                "best_val_loss": loss,
                "params": 100,
                "state": "completed",
                "train_seconds": 0.0,
            },
        )
        seconds.append(time.perf_counter() - start)
    at = {}
    for n in sorted(set(sizes) | {s for s in (200, 500, 2000) if s < total}):
        window = seconds[n - max(5, n // 10) : n]
        at[n] = 1000 * sorted(window)[len(window) // 2]
    points = [(math.log(n), math.log(ms)) for n, ms in at.items() if n >= 100]
    return {"ms_per_trial_at": at, "loglog_slope": _slope(points), "total_seconds": sum(seconds)}


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on x."""
    if len(points) < 2:
        return math.nan
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Driver throughput at several trial counts on a simulated large cluster, then searcher step costs."""
    # 5,000 whole-driver trials take over 10 minutes on 2 shared cores; the searcher alone still goes to 5,000.
    sizes = [40] if quick else [100, 1000]
    plain_sizes = [] if quick else [100]  # the plain wiring logs every metric in its own MLflow call: slow
    repeats = 3  # at sizes with a plain run, alternated with it: its ratios are medians of 3
    step_sizes = [100, 300] if quick else [100, 1000, 5000]
    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "cluster_cpus": CLUSTER_CPUS,
        "cpus_per_trial": CPUS_PER_TRIAL,
        "concurrent": CONCURRENT,
        "depths": DEPTHS,
        "runs": {},
    }
    rows = []
    data = common.load_dataset(_spec("driver-data", 4))
    common.start_ray(CLUSTER_CPUS)
    for n in sizes:
        runs: dict[str, list[dict]] = {"stacktune": [], "plain": []}
        for rep in range(repeats if n in plain_sizes else 1):
            common.log(f"driver: {n} no-op trials, stacktune ({rep + 1})")
            runs["stacktune"].append(_stacktune(n, workdir, data, rep))
            if n in plain_sizes:
                common.log(f"driver: {n} no-op trials, plain ({rep + 1})")
                runs["plain"].append(_plain(n, workdir, rep))
        figures["runs"][n] = runs
        for key, figure, unit in (
            ("trials_per_second", f"trials/s, {n} no-op trials (Tuner.fit)", ""),
            ("steady_trials_per_second", f"trials/s, {n} no-op trials, after workers started", ""),
            ("driver_cpu_ms_per_trial", f"driver CPU ms/trial, {n} trials", "ms"),
        ):
            st = common.summary([r[key] for r in runs["stacktune"]])
            pl = common.summary([r[key] for r in runs["plain"]]) if runs["plain"] else None
            figures.setdefault("summary", {})[f"{n}:{key}"] = {"stacktune": st, "plain": pl}
            goal, met = _goal(key, st["median"]) if n == max(sizes) else ("", None)
            rows.append(
                common.row("driver", figure, st["median"], pl["median"] if pl else None, unit=unit, goal=goal, met=met)
            )
    # The same driver writing to a real `mlflow server` (one worker, SQLite behind it, on the same machine) instead
    # of a SQLite file: each write is an HTTP request, and the server's CPU is not the driver's.
    n = sizes[0]
    common.log(f"driver: {n} no-op trials, stacktune writing to an mlflow server")
    with common.mlflow_server(workdir / "mlflow-server") as uri:
        served = _stacktune(n, workdir, data, 0, tracking_uri=uri)
    figures["mlflow_server"] = served
    for key, figure, unit in (
        ("trials_per_second", f"trials/s, {n} no-op trials (Tuner.fit), to an mlflow server (vs SQLite)", ""),
        ("driver_cpu_ms_per_trial", f"driver CPU ms/trial, {n} trials, to an mlflow server (vs SQLite)", "ms"),
    ):
        sqlite = figures["summary"][f"{n}:{key}"]["stacktune"]["median"]
        rows.append(common.row("driver", figure, served[key], sqlite, unit=unit))
    if not quick:
        # The same search capped by resources.max_concurrent: Tune's ConcurrencyLimiter stages no trial
        # while the cap is reached, so a finished trial's actor is not kept for reuse.
        common.log(f"driver: {sizes[0]} no-op trials, stacktune with resources.max_concurrent")
        limited = _stacktune(sizes[0], workdir, data, 0, limiter=True)
        figures["max_concurrent"] = limited
        usual = figures["summary"][f"{sizes[0]}:trials_per_second"]["stacktune"]["median"]
        rows.append(
            common.row(
                "driver",
                f"trials/s, {sizes[0]} no-op trials, max_concurrent={CONCURRENT} instead (vs CPU-bound)",
                limited["trials_per_second"],
                usual,
            )
        )
    common.stop_ray()
    common.log(f"driver: searcher step costs up to {max(step_sizes)} trials")
    steps = searcher_step_costs(step_sizes, workdir)
    figures["searcher_step"] = steps
    common.log(f"driver: the same steps with the random sampler, up to {max(step_sizes)} trials")
    random_steps = searcher_step_costs(step_sizes, workdir, sampler="random")
    figures["searcher_step_random"] = random_steps
    for n in step_sizes:
        ms = steps["ms_per_trial_at"][n]
        goal, met = (f"< {SEARCHER_GOAL_MS:g} ms", ms < SEARCHER_GOAL_MS) if n == max(step_sizes) else ("", None)
        rows.append(
            common.row("driver", f"searcher ms/trial at {n} trials in a study", ms, None, unit="ms", goal=goal, met=met)
        )
    low, high = min(step_sizes), max(step_sizes)
    # What is left once TPE is taken out: the journal storage, Optuna's ask and tell, and the searcher's own work.
    # TPE refits its Parzen estimators on every finished trial at each ask, and Optuna has no supported way to fit
    # them on fewer (a recent window), so this share grows with the study.
    rows.append(
        common.row(
            "driver",
            f"searcher ms/trial at {high} trials, random sampler instead (storage and searcher alone; vs TPE)",
            random_steps["ms_per_trial_at"][high],
            steps["ms_per_trial_at"][high],
            unit="ms",
        )
    )
    growth = steps["ms_per_trial_at"][high] / steps["ms_per_trial_at"][low]
    slope = steps["loglog_slope"]
    rows.append(
        common.row(
            "driver",
            f"searcher cost at {high} / at {low} trials (log-log slope {slope:.2f})",
            growth,
            None,
            goal="slope <= 1 (linear)",
            met=slope <= 1.1,
        )
    )
    return {"figures": figures, "rows": rows}
