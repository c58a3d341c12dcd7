"""Early stopping on a realistic budget: which kind reaches each depth's best sooner than training every trial out.

The same stacktune search (same spec, budget and sampler seed) runs once per variant: every trial trained to its
last epoch (`off`: no pruning, no patience), within-trial patience only (the default's `patience`), and each
pruning kind stacktune offers (Ray Tune's ASHA, ASHA in Hyperband brackets, and Optuna's median pruner on each
depth's study), these three without patience so that each is measured alone. For each depth, the time from the start
of Tuner.fit() until a completed trial comes within 5% of the `off` run's final best (same seed) is read back from
the depth's Optuna study. A variant that never gets there is "not reached". Final bests are compared with seed
noise: the standard deviation of the `off` run's best config's validation loss over three training seeds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from . import common

RAY_CPUS = 2
WITHIN = 0.05
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


def _spec(name: str, quick: bool, variant: str, seed: int = 0):
    # Mackey-Glass is noise-free, so validation losses of good and poor configs differ by orders of
    # magnitude and "within 5% of the best" is a strict target, reached only by near-optimal configs.
    if quick:
        size = {"length": 800, "depths": [1], "trials_per_depth": 6, "epochs": 6}
    else:  # a realistic budget (at least 50 trials per depth of at least 30 epochs), a series short enough for 2 cores
        size = {"length": 1000, "depths": [1, 2], "trials_per_depth": 50, "epochs": 30}
    pruning, patience = VARIANTS[variant]
    spec = common.search_spec(
        name,
        dataset="mackey_glass",
        units=[8, 16, 32, 64],
        lr=(1e-4, 3e-1),
        batch_size=64,
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
    """Standard deviation of the best config's validation loss over NOISE_SEEDS training seeds."""
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


def _depth_rows(depth: int, runs: dict[str, list[dict]], noise: float) -> tuple[dict, list[dict]]:
    """One depth's figures and rows: per variant, seconds to within 5% of `off`'s best, and its final best."""
    figures: dict[str, Any] = {"seed_noise_std": noise}
    rows = []
    targets = [r[depth]["final_best"] * (1 + WITHIN) for r in runs["off"]]
    off = [_seconds_to(r[depth]["completed"], t) for r, t in zip(runs["off"], targets, strict=True)]
    off_best = common.summary([r[depth]["final_best"] for r in runs["off"]])
    for variant in VARIANTS:
        if variant == "off":
            continue
        own = [_seconds_to(r[depth]["completed"], t) for r, t in zip(runs[variant], targets, strict=True)]
        reached = [(o, s) for o, s in zip(off, own, strict=True) if s is not None]
        ratio = common.summary([o / s for o, s in reached]) if reached else None
        best = common.summary([r[depth]["final_best"] for r in runs[variant]])
        epochs = [r[depth]["epochs"] for r in runs[variant]]
        off_epochs = [r[depth]["epochs"] for r in runs["off"]]
        figures[variant] = {
            "seconds_to_within": own,
            "off_seconds_to_within": off,
            "ratio": ratio,
            "final_best": best,
            "epochs_trained": epochs,
            "search_seconds": [r[depth]["seconds"] for r in runs[variant]],
        }
        seconds = common.summary([s for _, s in reached])["median"] if reached else None
        misses = len(own) - len(reached)
        note = f", not reached in {misses} of {len(own)}" if misses else ""
        share = sum(epochs) / sum(off_epochs)
        rows.append(
            common.row(
                "pruning",
                f"depth {depth}, {variant}: s until within 5% of the best without early stopping "
                f"({share:.0%} of its epochs{note})",
                seconds,
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
                f"depth {depth}, {variant}: final best val loss (vs off)",
                best["median"],
                off_best["median"],
                goal=f"difference <= 2 seed sd ({2 * noise:.2g})",
                met=abs(best["median"] - off_best["median"]) <= 2 * noise,
            )
        )
    return figures, rows


def _search_row(variant: str, runs: dict[str, list[dict]], depths: list[int]) -> dict:
    """The whole search's seconds (Tuner.fit, every depth's budget spent) with `variant` against `off`."""
    first = depths[0]  # every depth of a run shares its Tuner.fit
    own = [r[first]["seconds"] for r in runs[variant]]
    off = [r[first]["seconds"] for r in runs["off"]]
    ratio = common.summary([o / s for o, s in zip(off, own, strict=True)])
    return common.row(
        "pruning",
        f"whole search, {variant}: s to run every depth's trials (vs off)",
        common.summary(own)["median"],
        common.summary(off)["median"],
        ratio=ratio["median"],
        unit="s",
    )


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Every variant on the same seeds, alternated; per depth, time to within 5% of the `off` best and final bests."""
    repeats = 1 if quick else 2
    workdir.mkdir(parents=True, exist_ok=True)
    common.start_ray(RAY_CPUS)
    data = common.load_dataset(_spec("pruning", quick, "off"))
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    started = time.perf_counter()
    # Each repetition is a search with another sampler seed, so the spread covers the sampler's luck, not only timing.
    for rep in range(repeats):
        for variant in VARIANTS:
            common.log(f"pruning: {variant}, seed {rep} ({rep + 1}/{repeats})")
            runs[variant].append(_search(_spec(f"pruning-{variant}-{rep}", quick, variant, seed=rep), data, workdir))
    spec = _spec("pruning", quick, "off")
    figures: dict[str, Any] = {
        "within": WITHIN,
        "repeats": repeats,
        "trials_per_depth": spec.trials_per_depth,
        "epochs": spec.train.epochs,
        "variants": {name: {"pruning": p, "patience": pat} for name, (p, pat) in VARIANTS.items()},
        "depths": {},
    }
    rows = [_search_row(variant, runs, spec.depths) for variant in VARIANTS if variant != "off"]
    for depth in spec.depths:
        common.log(f"pruning: seed noise of depth {depth}'s best config")
        best_rep = min(range(repeats), key=lambda i: runs["off"][i][depth]["final_best"])
        noise = _seed_noise(
            _spec("pruning", quick, "off", seed=best_rep), data, depth, runs["off"][best_rep][depth]["best_params"]
        )
        figures["depths"][depth], depth_rows = _depth_rows(depth, runs, noise)
        rows += depth_rows
    figures["seconds"] = time.perf_counter() - started
    return {"figures": figures, "rows": rows}
