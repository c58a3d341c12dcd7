"""Early stopping judged against the noise: which kind reaches each depth's best sooner than training every trial out.

The same stacktune search (same spec, budget and sampler seed) runs once per variant: every trial trained to its
last epoch (`off`: no pruning, no patience), within-trial patience only (the default's `patience`), and each
pruning kind stacktune offers (Ray Tune's ASHA, ASHA in Hyperband brackets, and Optuna's median pruner on each
depth's study), these three without patience so that each is measured alone. It runs on two data sets, a clean
synthetic one (sine) and a noisy real one (yearly sunspots), with three sampler seeds each.

"The best" is judged against the noise of training itself: for each data set and depth, the standard deviation of
the validation loss of the `off` runs' best configuration over three training seeds (the seed SD). A variant has
found the best once a completed trial comes within 2 seed SDs of the `off` run's final best on the same seed; the
time from the start of Tuner.fit() until then is read back from the depth's Optuna study. A variant that never gets
there is "not reached". Final bests are compared with the same noise.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from . import common

RAY_CPUS = 2
WITHIN_SDS = 2.0  # "the best": within this many seed SDs of the `off` run's final best
GOAL = 3.0
NOISE_SEEDS = (1, 2, 3)
GRACE, REDUCTION = 2, 3
# name -> (pruning section, patience); `off` is the reference every other variant is timed against.
VARIANTS: dict[str, tuple[dict, int | None]] = {
    "off": ({"kind": "none"}, None),
    "patience": ({"kind": "none"}, 10),
    "asha": ({"kind": "asha", "grace_epochs": GRACE, "reduction": REDUCTION}, None),
    "hyperband": ({"kind": "hyperband", "grace_epochs": GRACE, "reduction": REDUCTION, "brackets": 3}, None),
    "median": ({"kind": "median", "grace_epochs": GRACE}, None),
}
# A clean synthetic series and a noisy real one (309 yearly values: its length is its own).
DATASETS: dict[str, int | None] = {"sine": 800, "sunspots": None}
QUICK_DATASETS = ("sunspots",)  # the smoke run: the real data set's path, the shortest search
REPEATS, QUICK_REPEATS = 3, 1


def _spec(name: str, quick: bool, dataset: str, variant: str, seed: int = 0):
    if quick:
        size = {"depths": [1], "trials_per_depth": 6, "epochs": 6}
    else:  # a realistic budget (40 trials per depth of 30 epochs), on series short enough for 2 cores
        size = {"depths": [1, 2], "trials_per_depth": 40, "epochs": 30}
    pruning, patience = VARIANTS[variant]
    spec = common.search_spec(
        name,
        dataset=dataset,
        length=DATASETS[dataset],
        window=16 if dataset == "sine" else 8,
        units=[8, 16, 32, 64],
        lr=(1e-4, 3e-1),
        batch_size=32,
        seed=seed,
        pruning=pruning,
        **size,
    )
    spec.train.patience = patience
    return spec


def _search(spec, data, workdir: Path) -> dict[int, dict[str, Any]]:
    """Runs the search; per depth, the completed trials as (seconds since fit start, value, params) and counts."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from stacktune.search.engine.studies import study_name
    from stacktune.search.pipeline import run_search

    with common.saved_environ(), common.timed_tuner_fit() as spans, common.quiet_output():
        run_search(spec, data, out=workdir / "stacktune-runs", tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    start = spans[0]["wall_start"]
    storage = optuna.storages.JournalStorage(
        JournalFileBackend(str(workdir / "stacktune-runs" / spec.name / "optuna.journal"))
    )
    out = {}
    for depth in spec.depths:
        trials = optuna.load_study(study_name=study_name(spec.name, depth), storage=storage).get_trials(deepcopy=False)
        done = sorted(
            (t.datetime_complete.timestamp() - start, t.value, t.params)
            for t in trials
            if t.state == TrialState.COMPLETE
        )
        out[depth] = {
            "completed": done,
            "final_best": min(v for _, v, _ in done),
            "best_params": min(done, key=lambda d: d[1])[2],
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "seconds": spans[0]["seconds"],
            "epochs": sum(int(t.user_attrs.get("epoch", 0)) for t in trials),
        }
    return out


def _seconds_to(done: list[tuple[float, float, dict]], target: float) -> float | None:
    """Seconds until the first completed trial at or under `target`; None when none is."""
    return next((seconds for seconds, value, _ in done if value <= target), None)


def _seed_noise(spec, data, depth: int, params: dict) -> float:
    """Standard deviation of a config's validation loss over NOISE_SEEDS training seeds."""
    from stacktune.models import fit
    from stacktune.search.engine.space import TrialSpace
    from stacktune.search.spec.convert import build

    cfg = TrialSpace.of(spec).config_of(params, depth)
    losses = []
    for seed in NOISE_SEEDS:
        cfg.train.seed = seed
        model, settings = build(cfg, data, threads=1)
        losses.append(fit(model, data, settings).best_val_loss)
    return statistics.stdev(losses)


def _case(dataset: str, depth: int, runs: dict[str, list[dict]], noise: float) -> tuple[dict, list[dict], dict]:
    """One data set and depth: its figures, its rows (per variant, seconds to within 2 seed SDs of `off`'s best and
    the final best) and, per variant, the off/variant ratios and misses that the summary rows pool."""
    figures: dict[str, Any] = {"seed_noise_std": noise}
    rows, pooled = [], {}
    targets = [r[depth]["final_best"] + WITHIN_SDS * noise for r in runs["off"]]
    off = [_seconds_to(r[depth]["completed"], t) for r, t in zip(runs["off"], targets, strict=True)]
    off_best = common.summary([r[depth]["final_best"] for r in runs["off"]])
    figures["off"] = {"seconds_to_within": off, "targets": targets, "final_best": off_best}
    for variant in VARIANTS:
        if variant == "off":
            continue
        own = [_seconds_to(r[depth]["completed"], t) for r, t in zip(runs[variant], targets, strict=True)]
        ratios = [o / s for o, s in zip(off, own, strict=True) if s is not None]
        ratio = common.summary(ratios) if ratios else None
        best = common.summary([r[depth]["final_best"] for r in runs[variant]])
        close = abs(best["median"] - off_best["median"]) <= WITHIN_SDS * noise
        epochs = [r[depth]["epochs"] for r in runs[variant]]
        off_epochs = [r[depth]["epochs"] for r in runs["off"]]
        misses = len(own) - len(ratios)
        pooled[variant] = {"ratios": ratios, "misses": misses, "cases": len(own), "close": close}
        figures[variant] = {
            "seconds_to_within": own,
            "ratio": ratio,
            "final_best": best,
            "epochs_trained": epochs,
            "search_seconds": [r[depth]["seconds"] for r in runs[variant]],
        }
        reached = [s for s in own if s is not None]
        note = f", not reached in {misses} of {len(own)}" if misses else ""
        share = sum(epochs) / sum(off_epochs)
        rows.append(
            common.row(
                "pruning",
                f"{dataset}, depth {depth}, {variant}: s until within 2 seed SDs of the best without early stopping "
                f"({share:.0%} of its epochs{note})",
                common.summary(reached)["median"] if reached else None,
                common.summary(off)["median"],
                ratio=ratio["median"] if ratio else None,
                goal=f"off/{variant} >= {GOAL:.0f}x",
                met=bool(ratio) and not misses and ratio["median"] >= GOAL,
                unit="s",
            )
        )
        rows.append(
            common.row(
                "pruning",
                f"{dataset}, depth {depth}, {variant}: final best val loss (vs off)",
                best["median"],
                off_best["median"],
                goal=f"difference <= 2 seed SDs ({WITHIN_SDS * noise:.2g})",
                met=close,
            )
        )
    return figures, rows, pooled


def _verdict_rows(pooled: list[dict]) -> list[dict]:
    """Per variant, over every data set, depth and seed: the median off/variant ratio, a run that never reached the
    best counting 0. It wins only if that is >= 3x, every run reached the best and every final best is within 2 seed
    SDs of `off`'s."""
    rows = []
    for variant in VARIANTS:
        if variant == "off":
            continue
        misses = sum(case[variant]["misses"] for case in pooled)
        ratios = [r for case in pooled for r in case[variant]["ratios"]] + [0.0] * misses
        far = sum(not case[variant]["close"] for case in pooled)
        median = common.summary(ratios)["median"]
        notes = [f"not reached in {misses}"] if misses else []
        notes += [f"final best beyond 2 seed SDs in {far} of {len(pooled)} depths"] if far else []
        rows.append(
            common.row(
                "pruning",
                f"{variant}: time to the best, off/{variant}, median over {len(ratios)} runs of every data set, depth "
                f"and seed (never reached counts 0{'; ' + '; '.join(notes) if notes else ''})",
                None,
                None,
                ratio=median,
                goal=f">= {GOAL:.0f}x, always reached, bests within noise",
                met=median >= GOAL and not misses and not far,
                unit="x",
            )
        )
    return rows


def _search_row(dataset: str, variant: str, runs: dict[str, list[dict]], depths: list[int]) -> dict:
    """The whole search's seconds (Tuner.fit, every depth's budget spent) with `variant` against `off`."""
    first = depths[0]  # every depth of a run shares its Tuner.fit
    own = [r[first]["seconds"] for r in runs[variant]]
    off = [r[first]["seconds"] for r in runs["off"]]
    ratio = common.summary([o / s for o, s in zip(off, own, strict=True)])
    return common.row(
        "pruning",
        f"{dataset}, whole search, {variant}: s to run every depth's trials (vs off)",
        common.summary(own)["median"],
        common.summary(off)["median"],
        ratio=ratio["median"],
        unit="s",
    )


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Every variant on the same seeds, alternated, on each data set; per data set and depth, time to within 2 seed SDs
    of the `off` best and final bests; per variant, the pooled verdict."""
    repeats = QUICK_REPEATS if quick else REPEATS
    datasets = QUICK_DATASETS if quick else tuple(DATASETS)
    workdir.mkdir(parents=True, exist_ok=True)
    common.start_ray(RAY_CPUS)
    started = time.perf_counter()
    first = _spec("pruning", quick, datasets[0], "off")
    figures: dict[str, Any] = {
        "within_seed_sds": WITHIN_SDS,
        "noise_seeds": list(NOISE_SEEDS),
        "repeats": repeats,
        "trials_per_depth": first.trials_per_depth,
        "epochs": first.train.epochs,
        "variants": {name: {"pruning": p, "patience": pat} for name, (p, pat) in VARIANTS.items()},
        "datasets": {},
    }
    rows, pooled = [], []
    for dataset in datasets:
        data = common.load_dataset(_spec("pruning", quick, dataset, "off"))
        runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        # Each repetition is a search with another sampler seed, so the spread covers the sampler's luck, not only
        # timing.
        for rep in range(repeats):
            for variant in VARIANTS:
                common.log(f"pruning: {dataset}, {variant}, seed {rep} ({rep + 1}/{repeats})")
                spec = _spec(f"pruning-{dataset}-{variant}-{rep}", quick, dataset, variant, seed=rep)
                runs[variant].append(_search(spec, data, workdir))
        spec = _spec("pruning", quick, dataset, "off")
        rows += [_search_row(dataset, variant, runs, spec.depths) for variant in VARIANTS if variant != "off"]
        figures["datasets"][dataset] = {}
        for depth in spec.depths:
            common.log(f"pruning: {dataset}, seed noise of depth {depth}'s best config")
            best_rep = min(range(repeats), key=lambda i: runs["off"][i][depth]["final_best"])
            noise = _seed_noise(
                _spec("pruning", quick, dataset, "off", seed=best_rep),
                data,
                depth,
                runs["off"][best_rep][depth]["best_params"],
            )
            case_figures, case_rows, case_pooled = _case(dataset, depth, runs, noise)
            figures["datasets"][dataset][depth] = case_figures
            rows += case_rows
            pooled.append(case_pooled)
    rows += _verdict_rows(pooled)
    figures["seconds"] = time.perf_counter() - started
    return {"figures": figures, "rows": rows}
