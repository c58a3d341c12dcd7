"""Time to verdict: wall-clock from the start of a search to a decided answer on which depth is better.

stacktune: run_search on a fixed spec (per-depth studies interleaved in one Ray Tune run, then the evaluation with
`seeds: auto`, which stops adding seeds once every pair of depths is decided), the whole call, MLflow, report and
models included. The baseline is what a user wires by hand: for each depth its own Ray Tune run with OptunaSearch
and MLflowLoggerCallback over the same space and budget, then a loop over a fixed number of seeds (stacktune's
`max_seeds`) retraining each depth's best and scoring it on the test split, with the same statistics deciding.
Both run on the same 2 slots; the verdicts are compared too (a faster answer that differs is not a win).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import common

SLOTS = 2
RAY_CPUS = SLOTS
GOAL = 3.0  # at least this many times sooner than the baseline, with the same verdict
# Depths 1 and 3 on a noisy sine: with equal weights the deeper stack trains worse in few epochs, so the pair is
# decidable within the seed cap; the spec is fixed so that the figure compares like with like across runs.
DEPTHS = [1, 3]
PARAMS = 3000
MAX_SEEDS = 10


def _spec(name: str, quick: bool):
    return common.search_spec(
        name,
        length=1000 if quick else 2400,
        depths=DEPTHS,
        trials_per_depth=3 if quick else 10,
        epochs=3 if quick else 8,
        params=PARAMS,
        lr=(1e-3, 3e-2),
        evaluation={"seeds": "auto", "max_seeds": MAX_SEEDS},
        baseline=None,  # the hand-written loop retrains no fixed setting either
        resources={"cpus_per_trial": 1},
    )


def _stacktune(spec, data, workdir: Path) -> dict[str, Any]:
    from stacktune.search.pipeline import run_search

    with common.saved_environ(), common.quiet_output():
        start = time.perf_counter()
        comparison = run_search(spec, data, out=workdir / "stacktune-runs", tracking_uri=f"sqlite:///{workdir}/st.db")
        seconds = time.perf_counter() - start
    winner = comparison.verdict.winner if comparison.verdict is not None else None
    return {"seconds": seconds, "winner": winner, "seeds": len(comparison.evaluation.seeds)}


def _tune_depth(spec, data, depth: int, workdir: Path) -> dict[str, Any]:
    """One depth's hand-wired search: Tuner + OptunaSearch + MLflowLoggerCallback; returns the best config."""
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    from .plain import train_trial

    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial, data=data, widths=spec.space.units.widths, epochs=spec.train.epochs, batch_size=32
        ),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"depth": depth, "lr": tune.loguniform(spec.space.lr.low, spec.space.lr.high)},
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(seed=spec.seed),
            metric="val_loss",
            mode="min",
            num_samples=spec.trials_per_depth,
            max_concurrent_trials=SLOTS,
        ),
        run_config=tune.RunConfig(
            name=f"ttv-plain-d{depth}",
            storage_path=str(workdir / "plain-ray"),
            verbose=0,
            callbacks=[
                MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/plain.db", experiment_name=f"ttv-d{depth}")
            ],
        ),
    )
    best = tuner.fit().get_best_result(metric="val_loss", mode="min", scope="all")
    return dict(best.config)


def _seed_loop(spec, data, best: dict[int, dict]) -> dict[int, list[float]]:
    """The hand-written evaluation: every depth's best, retrained for each seed, scored on the test split."""
    from stacktune.models import LSTMConfig, TrainSettings, evaluate, fit

    losses: dict[int, list[float]] = {}
    for depth, config in best.items():
        width = spec.space.units.widths[depth]
        model = LSTMConfig(input_size=1, units=[width] * depth, output_size=1)
        for seed in range(MAX_SEEDS):
            settings = TrainSettings(lr=config["lr"], epochs=spec.train.epochs, batch_size=32, threads=1, seed=seed)
            result = fit(model, data, settings)
            losses.setdefault(depth, []).append(evaluate(result.model, data.test, task="regression")["loss"])
    return losses


def _plain(spec, data, workdir: Path) -> dict[str, Any]:
    from stacktune.search.verdict.stats import compare

    with common.saved_environ(), common.quiet_output():
        start = time.perf_counter()
        best = {depth: _tune_depth(spec, data, depth, workdir) for depth in spec.depths}
        losses = _seed_loop(spec, data, best)
        verdict = compare(losses, confidence=spec.evaluation.confidence, seed=spec.seed)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "winner": verdict.winner, "seeds": MAX_SEEDS}


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Times the two side by side, interleaved, on 2 slots."""
    from mlflow.tracking import MlflowClient

    repeats = 1 if quick else 3  # the median of 3, and the same winner in every one
    workdir.mkdir(parents=True, exist_ok=True)
    common.start_ray(SLOTS)
    for db in ("st.db", "plain.db"):  # the schema migration outside the timing, for both
        MlflowClient(tracking_uri=f"sqlite:///{workdir}/{db}").search_experiments()
    runs: dict[str, list[dict]] = {"stacktune": [], "plain": []}
    for rep in range(repeats):
        spec = _spec(f"ttv-{rep}", quick)
        data = common.load_dataset(spec)
        for variant in ("stacktune", "plain"):
            common.log(f"time to verdict: {variant}, repetition {rep + 1}/{repeats}")
            folder = workdir / f"{variant}-{rep}"
            folder.mkdir(parents=True, exist_ok=True)
            runs[variant].append(
                _stacktune(spec, data, folder) if variant == "stacktune" else _plain(spec, data, folder)
            )
    st = common.summary([r["seconds"] for r in runs["stacktune"]])["median"]
    pl = common.summary([r["seconds"] for r in runs["plain"]])["median"]
    same = all(s["winner"] == p["winner"] for s, p in zip(runs["stacktune"], runs["plain"], strict=True))
    seeds = ", ".join(str(r["seeds"]) for r in runs["stacktune"])
    rows = [
        common.row(
            "time to verdict",
            f"seconds to a decided verdict (stacktune used {seeds} of {MAX_SEEDS} seeds; "
            f"same winner as the baseline in every repetition: {'yes' if same else 'no'})",
            st,
            pl,
            ratio=pl / st if st else None,
            goal=f">= {GOAL:g}x sooner, same verdict",
            met=bool(st) and pl / st >= GOAL and same,
        )
    ]
    return {"figures": {"runs": runs, "max_seeds": MAX_SEEDS, "depths": DEPTHS}, "rows": rows}
