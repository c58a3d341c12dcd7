"""Evaluation stage: wall-clock from the evaluation's start to its last retraining, 8 seeds of the demo's depths.

The demo spec (sunspots, depths 1-3, its space and 15 epochs; a short search, since only the evaluation is timed)
retrains each depth's best and the fixed setting over 8 seeds: 48 retrainings on 2 slots. stacktune hands out a
configuration's seeds as one trial that trains them one after another (and, where it pays, as one batched model);
the baseline is the same search with one trial per (configuration, seed), as the evaluation ran before. Both run
side by side in this process, interleaved, each whole search timed from its `evaluation_started` milestone to its
last `retraining_finished`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from . import common

SLOTS = 2
RAY_CPUS = SLOTS
GOAL = 3.0  # the evaluation at least this many times sooner than one trial per seed
SEEDS = 8
DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


def _clock():
    """A Progress that notes when the evaluation starts and when its last retraining ends."""
    from stacktune.search.progress import Progress

    class Clock(Progress):
        started: float | None = None
        ended: float | None = None
        retrainings = 0

        def evaluation_started(self, **kwargs) -> None:
            if self.started is None:
                self.started = time.perf_counter()

        def retraining_finished(self, **kwargs) -> None:
            self.ended = time.perf_counter()
            self.retrainings += 1

    return Clock()


def _spec(name: str, quick: bool):
    import yaml

    from stacktune.search.spec.schema import SearchSpec

    raw = yaml.safe_load(DEMO.read_text())
    raw.update(name=name, trials_per_depth=2, sampler={"n_startup_trials": 2}, evaluation={"seeds": SEEDS})
    raw["resources"] = {"cpus_per_trial": 1}
    if quick:
        raw["train"] = {**raw["train"], "epochs": 2}
        raw["evaluation"] = {"seeds": 2}
        raw["depths"] = [1, 2]
    return SearchSpec.model_validate(raw)


@contextlib.contextmanager
def _one_seed_per_trial() -> Iterator[None]:
    """The evaluation as it ran before seeds were bundled: a cluster 'wider' than the jobs splits every bundle into
    single seeds, one trial each."""
    from stacktune.search.evaluation import stage

    slots = stage.trial_slots
    stage.trial_slots = lambda spec: 10**6
    try:
        yield
    finally:
        stage.trial_slots = slots


def _evaluation_seconds(spec, workdir: Path, *, bundled: bool) -> dict[str, float]:
    from stacktune.search.pipeline import run_search

    clock = _clock()
    folder = workdir / f"{spec.name}-{'bundled' if bundled else 'single'}-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    with common.saved_environ(), common.quiet_output(), contextlib.ExitStack() as stack:
        if not bundled:
            stack.enter_context(_one_seed_per_trial())
        run_search(spec, out=folder / "runs", tracking_uri=f"sqlite:///{folder}/mlflow.db", progress=clock)
    return {"seconds": clock.ended - clock.started, "retrainings": clock.retrainings}


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = _spec("bench-eval", quick)
    common.start_ray(RAY_CPUS)
    runs: dict[str, list[dict]] = {"bundled": [], "single": []}

    def measure(name: str) -> float:
        runs[name].append(_evaluation_seconds(spec, workdir, bundled=name == "bundled"))
        return runs[name][-1]["seconds"]

    timed = common.interleaved({name: (lambda name=name: measure(name)) for name in runs}, 1 if quick else 3)
    figures: dict[str, Any] = {name: common.summary(values) for name, values in timed.items()}
    figures["retrainings"] = runs["bundled"][-1]["retrainings"]
    bundled, single = figures["bundled"]["median"], figures["single"]["median"]
    speedup = single / bundled
    figures["speedup"] = speedup
    seeds = spec.evaluation.seeds
    rows = [
        common.row(
            "evaluation",
            f"evaluation stage s, {seeds} seeds x depths {spec.depths} (vs one trial per seed)",
            bundled,
            single,
            goal=f">= {GOAL}x sooner",
            met=speedup >= GOAL,
            ratio=speedup,
            unit="s",
        )
    ]
    return {"figures": figures, "rows": rows}
