"""Orchestration efficiency: how much of the slots' wall-clock time trials spend training.

efficiency = sum of the trials' own training seconds (inside fit's epochs) / (slots x wall seconds).
The wall clock is Tuner.fit() with Ray already running, for stacktune (run_search) and for the
plain Tuner + OptunaSearch + MLflowLoggerCallback wiring alike; a second figure times the whole
call (stacktune: run_search with its MLflow runs, studies and summary; plain: building the Tuner,
fit() and reading the results).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import common

SLOTS = 2
RAY_CPUS = SLOTS
# (label, target seconds per trial, epochs, goal)
SHORT = ("1s", 1.0, 10, 0.70)
LONG = ("10s", 10.0, 16, 0.90)
PARAMS = 4500  # weights per stack: 32 units at depth 1, 19 at depth 2
PROBE_LENGTH = 2000
# How much slower an epoch runs with both slots and the driver busy than alone in this process
# (measured here: about 1.0 for 1 s trials and 0.9 for 10 s ones).
CONTENTION = 1.0


def _spec(name: str, length: int, epochs: int, trials: int):
    return common.search_spec(
        name, length=length, depths=[1, 2], trials_per_depth=trials // 2, epochs=epochs, params=PARAMS
    )


def _length_for(seconds: float, epochs: int) -> int:
    """The sine length whose trials train for about `seconds` on this machine, from a timed epoch of each depth."""
    from stacktune.models import fit
    from stacktune.search.spec.convert import build, to_train_config

    spec = _spec("orch-probe", PROBE_LENGTH, 2, 2)
    data = common.load_dataset(spec)
    epoch_seconds = []
    for depth in spec.depths:
        width = spec.space.units.widths[depth]
        params = {
            **{f"units_{i}": width for i in range(depth)},
            "lr": 1e-2,
            "dropout": 0.0,
            "weight_decay": 0.0,
            "batch_size": 32,
        }
        model, settings = build(to_train_config(spec, params, depth=depth), data, threads=1)
        epoch_seconds.append(fit(model, data, settings).epochs[-1].seconds)  # the second epoch: warmed up
    per_epoch = CONTENTION * sum(epoch_seconds) / len(epoch_seconds)
    return max(500, int(round(PROBE_LENGTH * seconds / (epochs * per_epoch), -2)))


def _stacktune(spec, data, workdir: Path) -> dict[str, float]:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from stacktune.search.engine.studies import study_name
    from stacktune.search.pipeline import run_search

    with common.saved_environ(), common.timed_tuner_fit() as spans, common.quiet_output():
        start = time.perf_counter()
        run_search(spec, data, out=workdir / "stacktune-runs", tracking_uri=f"sqlite:///{workdir}/mlflow.db")
        total = time.perf_counter() - start
    storage = optuna.storages.JournalStorage(
        JournalFileBackend(str(workdir / "stacktune-runs" / spec.name / "optuna.journal"))
    )
    train = 0.0
    for depth in spec.depths:
        study = optuna.load_study(study_name=study_name(spec.name, depth), storage=storage)
        train += sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in study.get_trials(deepcopy=False))
    fit_seconds = spans[0]["seconds"]
    return {"train_seconds": train, "fit_seconds": fit_seconds, "total_seconds": total}


def _plain(spec, data, workdir: Path, name: str) -> dict[str, float]:
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    from .plain import train_trial

    with common.saved_environ(), common.quiet_output():
        start = time.perf_counter()
        trainable = tune.with_resources(
            tune.with_parameters(
                train_trial,
                data=data,
                widths=spec.space.units.widths,
                epochs=spec.train.epochs,
                batch_size=spec.train.batch_size,
            ),
            {"cpu": 1},
        )
        tuner = tune.Tuner(
            trainable,
            param_space={
                "depth": tune.choice(spec.depths),
                "lr": tune.loguniform(spec.space.lr.low, spec.space.lr.high),
            },
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(seed=spec.seed),
                metric="val_loss",
                mode="min",
                num_samples=spec.trials_per_depth * len(spec.depths),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(workdir / "plain-ray"),
                verbose=0,
                callbacks=[
                    MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/plain-mlflow.db", experiment_name=name)
                ],
            ),
        )
        fit_start = time.perf_counter()
        results = tuner.fit()
        fit_seconds = time.perf_counter() - fit_start
        train = sum(float(r.metrics.get("train_seconds", 0.0)) for r in results)
        total = time.perf_counter() - start
    return {"train_seconds": train, "fit_seconds": fit_seconds, "total_seconds": total}


def _warm_stores(workdir: Path) -> None:
    """Creates both MLflow databases up front, so neither side pays the schema migration inside the timing."""
    from mlflow.tracking import MlflowClient

    for db in ("mlflow.db", "plain-mlflow.db"):
        MlflowClient(tracking_uri=f"sqlite:///{workdir}/{db}").search_experiments()


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Times stacktune and the plain wiring side by side, interleaved, on 2 slots."""
    trials = 6 if quick else 24
    cases = [(SHORT, 1)] if quick else [(SHORT, 3), (LONG, 3)]  # a ratio is the median of 3 runs, each side by side
    workdir.mkdir(parents=True, exist_ok=True)
    common.start_ray(SLOTS)
    _warm_stores(workdir)
    figures: dict[str, Any] = {"slots": SLOTS, "trials": trials, "cases": {}}
    rows = []
    for (label, seconds, epochs, goal), repeats in cases:
        length = _length_for(seconds, epochs)
        common.log(f"orchestration: sine length {length} for {seconds:.0f} s trials")
        spec = _spec(f"orch-{label}", length, epochs, trials)
        data = common.load_dataset(spec)
        runs: dict[str, list[dict]] = {"stacktune": [], "plain": []}
        for rep in range(repeats):
            for variant in ("stacktune", "plain"):
                common.log(f"orchestration {label} trials: {variant}, repetition {rep + 1}/{repeats}")
                if variant == "stacktune":
                    this = spec.model_copy(update={"name": f"orch-{label}-{rep}"})
                    runs[variant].append(_stacktune(this, data, workdir))
                else:
                    runs[variant].append(_plain(spec, data, workdir, f"plain-{label}-{rep}"))
        case: dict[str, Any] = {"length": length, "epochs": epochs, "repeats": repeats}
        for variant, measured in runs.items():
            fit_eff = [m["train_seconds"] / (SLOTS * m["fit_seconds"]) for m in measured]
            total_eff = [m["train_seconds"] / (SLOTS * m["total_seconds"]) for m in measured]
            case[variant] = {
                "efficiency": common.summary(fit_eff),
                "efficiency_whole_call": common.summary(total_eff),
                "mean_trial_seconds": common.summary([m["train_seconds"] / trials for m in measured]),
                "runs": measured,
            }
        st, pl = case["stacktune"]["efficiency"]["median"], case["plain"]["efficiency"]["median"]
        ratios = [
            s["train_seconds"] / s["fit_seconds"] / (p["train_seconds"] / p["fit_seconds"])
            for s, p in zip(runs["stacktune"], runs["plain"], strict=False)
        ]
        case["ratio"] = common.summary(ratios)
        figures["cases"][label] = case
        trial_s = case["stacktune"]["mean_trial_seconds"]["median"]
        rows.append(
            common.row(
                "orchestration",
                f"efficiency, {trial_s:.1f} s trials (Tuner.fit)",
                st,
                pl,
                ratio=case["ratio"]["median"],
                goal=f">= {goal:.2f} and > plain",
                met=st >= goal and st > pl,
            )
        )
        rows.append(
            common.row(
                "orchestration",
                f"efficiency, {trial_s:.1f} s trials (whole call)",
                case["stacktune"]["efficiency_whole_call"]["median"],
                case["plain"]["efficiency_whole_call"]["median"],
            )
        )
    return {"figures": figures, "rows": rows}
