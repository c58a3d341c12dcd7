"""How often the depth verdict is wrong, how often it finds a real difference, and how well its intervals cover.

Simulated searches with known answers, run through ``stacktune.search.verdict.stats`` and ``versus_fixed``:

- A/A: two depths where neither is better (P(a run of one beats a run of the other) = 1/2) but whose losses may differ
  in spread (SD ratio 1, 3, 5), in shape (normal, t with 3 df, log-normal, rounded to whole numbers) and in run count
  (5 or 7 against 20); the share of searches naming a winner, per seed count 4..30.
- family-wise: 3 to 6 equal depths at DEFAULT_SEEDS; the share of searches leaving any depth out of the set that may
  be best, or calling any pair.
- power: one depth 2 seed-SDs better than the others among 2 to 6 depths; the share naming it the winner (and, for 6
  depths, at more seeds); the worse of two never.
- trend: 0.5 seed-SD per added layer over 6 depths, found; no change in the mean, with equal or growing spread, not.
- coverage: the per-depth interval for log-normal (sigma 1) and normal losses; the difference interval.
- tuned versus fixed: both from the same distributions; the share of searches saying the conclusion changed.
- seeds: auto: the rounds' false winners and power.

Each figure uses its own seeded generator, so a run is reproducible; figures run in parallel over the cores. "met"
means the observed rate is consistent with the goal: a one-sided binomial test of the rate against the goal does not
reject at 1%, which allows for Monte Carlo error (about 0.5 percentage points at 2,000 replications).

    make bench (with the other benchmarks), or: .venv/bin/python -m benchmarks.verdict [--quick]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import integrate, optimize, special, stats

from stacktune.search.verdict.stats import DEFAULT_SEEDS, compare, difference_ci, mean_interval, trend
from stacktune.search.verdict.versus_fixed import compare_settings

REPLICATIONS = 2_000
QUICK_REPLICATIONS = 20  # a smoke run: every figure computed, none of them precise
AA_SEEDS = (4, 6, 8, 30)
AA_KINDS = ("normal", "t3", "lognormal", "discretised")
AA_SPREADS = (1.0, 3.0, 5.0)
POWER_SEEDS_6 = (8, 10, 12, 15)


@functools.lru_cache(maxsize=8)
def lognormal_shift(scale: float) -> float:
    """The shift c that makes P(X < scale * Y + c) = 1/2 for X, Y standard log-normal: a skewed pair of depths with
    different spreads and neither better, computed by quadrature."""

    def p_first_lower(c: float) -> float:
        def density(z: float) -> float:
            t = scale * math.exp(z) + c
            return (special.ndtr(math.log(t)) if t > 0 else 0.0) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

        return integrate.quad(density, -12, 12, limit=200)[0]

    return optimize.brentq(lambda c: p_first_lower(c) - 0.5, -50.0, 50.0, xtol=1e-12)


def draw(rng: np.random.Generator, kind: str, n: int, spread: float) -> np.ndarray:
    """n losses of one depth, centred so that P(a depth beats another) = 1/2 whatever the spread: symmetric kinds
    around 0, the log-normal shifted by `lognormal_shift`."""
    if kind == "normal":
        return rng.normal(0.0, spread, n)
    if kind == "t3":
        return spread * rng.standard_t(3, n)
    if kind == "discretised":
        return np.round(rng.normal(0.0, spread, n))
    if kind == "lognormal":
        return spread * rng.lognormal(0.0, 1.0, n) + (lognormal_shift(spread) if spread != 1.0 else 0.0)
    raise ValueError(kind)


def draw_replicates(
    rng: np.random.Generator, k: int, searches: int, n: int, *, shift: float = 0.0, kind: str = "normal"
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Losses of k depths, each searched `searches` times and each search's configuration retrained over n seeds,
    with a search effect as large as the seed effect (each SD 1/sqrt 2, so a run's total SD is 1); depth 1 is
    `shift` total SDs better. Returns the losses and each loss's replicate number. "lognormal" draws the same on the
    log scale (depth 1's losses scaled down by exp(shift))."""
    sd = 1.0 / math.sqrt(2.0)
    losses, groups = {}, {}
    for d in range(1, k + 1):
        effect = np.repeat(rng.normal(0.0, sd, searches), n)
        values = effect + rng.normal(0.0, sd, searches * n) - (shift if d == 1 else 0.0)
        losses[d] = np.exp(values) if kind == "lognormal" else values
        groups[d] = np.repeat(np.arange(1, searches + 1), n)
    return losses, groups


def _met(hits: int, reps: int, goal: tuple[str, float] | None) -> bool | None:
    """Whether the observed count is consistent with the goal (one-sided binomial test at 1%), None without one."""
    if goal is None:
        return None
    direction, target = goal
    if target <= 0.0:
        return hits == 0
    alternative = "greater" if direction == "<=" else "less"
    return bool(stats.binomtest(hits, reps, target, alternative=alternative).pvalue >= 0.01)


# ----------------------------------------------------------------------------- one replication of each figure


def _aa(g, kind: str, n_a: int, n_b: int, spread: float) -> bool:
    return compare({1: draw(g, kind, n_a, 1.0), 2: draw(g, kind, n_b, spread)}).winner is not None


def _familywise(g, k: int) -> bool:
    verdict = compare({d: g.normal(0, 1, DEFAULT_SEEDS) for d in range(1, k + 1)})
    return len(verdict.best_set) < k or any(p.better is not None for p in verdict.pairs)


def _leader(g, k: int, n: int) -> bool:
    losses = {d: g.normal(0, 1, n) for d in range(1, k + 1)}
    losses[1] = losses[1] - 2.0
    return compare(losses).winner == 1


def _wrong(g) -> bool:
    return compare({1: g.normal(-2, 1, DEFAULT_SEEDS), 2: g.normal(0, 1, DEFAULT_SEEDS)}).winner == 2


def _trend(g, slope: float, growing: bool) -> bool:
    losses = {d: g.normal(-slope * d, 0.5 * d if growing else 1.0, DEFAULT_SEEDS) for d in range(1, 7)}
    return trend(losses).direction is not None


def _coverage(g, kind: str) -> bool:
    if kind == "lognormal":
        values, truth = g.lognormal(0.0, 1.0, DEFAULT_SEEDS), math.exp(0.5)
    else:
        values, truth = g.normal(1.0, 0.2, DEFAULT_SEEDS), 1.0
    _, ci = mean_interval(values)
    return ci.low <= truth <= ci.high


def _difference_coverage(g) -> bool:
    _, ci = difference_ci(g.normal(1.0, 1.0, DEFAULT_SEEDS), g.normal(0.3, 2.0, DEFAULT_SEEDS))
    return ci.low <= 0.7 <= ci.high


def _settings_null(g) -> bool:
    centres = {1: 0.5, 2: 0.52, 3: 0.6}
    tuned = {d: g.normal(c, 0.03, DEFAULT_SEEDS) for d, c in centres.items()}
    fixed = {d: g.normal(c, 0.03, DEFAULT_SEEDS) for d, c in centres.items()}
    result = compare_settings(tuned, fixed, tuned_verdict=compare(tuned), fixed_verdict=compare(fixed), naive_loss=0.55)
    return result.changed is True


def _sequential(g, rounds: list[int], sd: float) -> bool:
    a, b = g.normal(-sd, 1, rounds[-1]), g.normal(0, 1, rounds[-1])
    for n in rounds:
        winner = compare({1: a[:n], 2: b[:n]}, looks=len(rounds)).winner
        if winner is not None:
            return winner == 1 if sd else True
    return False


def _replicates_null(g, k: int, searches: int, kind: str, by_search: bool) -> bool:
    losses, groups = draw_replicates(g, k, searches, DEFAULT_SEEDS, kind=kind)
    verdict = compare(losses, replicates=groups if by_search else None)
    return verdict.winner is not None or any(p.better is not None for p in verdict.pairs)


def _replicates_power(g, k: int, searches: int) -> bool:
    losses, groups = draw_replicates(g, k, searches, DEFAULT_SEEDS, shift=2.0)
    return compare(losses, replicates=groups).winner == 1


def _auto_rounds() -> list[int]:
    """The seed counts of `evaluation: {seeds: auto, max_seeds: 20}` for two depths, as a search plans them."""
    from stacktune.search.evaluation import seed_rounds
    from stacktune.search.spec.schema import SearchSpec

    spec = {"name": "sim", "dataset": {"name": "sine"}, "depths": [1, 2], "trials_per_depth": 1}
    return seed_rounds(SearchSpec.model_validate({**spec, "evaluation": {"seeds": "auto", "max_seeds": 20}}))


# ----------------------------------------------------------------------------- the figures


def _figures(quick: bool = False) -> list[tuple[str, Callable[..., bool], tuple, tuple[str, float] | None, str, float]]:
    """Every figure: name, one replication, its arguments, goal, what it measures, and its share of replications.
    A quick run takes the A/A grid at DEFAULT_SEEDS only."""
    n0 = DEFAULT_SEEDS
    figures: list = []
    for kind in AA_KINDS:
        for spread in AA_SPREADS:
            for n in (n0,) if quick else AA_SEEDS:
                what = f"A/A, {kind}, SD ratio {spread:g}, {n} seeds each: a winner"
                figures.append((f"aa_{kind}_sd{spread:g}_n{n}", _aa, (kind, n, n, spread), ("<=", 0.05), what, 1.0))
        for few in (5, 7):
            what = f"A/A, {kind}, {few} runs at SD 3 against 20 at SD 1: a winner"
            figures.append((f"aa_{kind}_{few}v20", _aa, (kind, 20, few, 3.0), ("<=", 0.05), what, 1.0))
    for k in range(3, 7):
        what = f"{k} equal depths, {n0} seeds: any depth left out of the best set or any pair called"
        figures.append((f"familywise_k{k}", _familywise, (k,), ("<=", 0.05), what, 1.0))
    for k in range(2, 7):
        goal = (">=", 0.90) if k == 2 else ((">=", 0.80) if k == 6 else None)
        what = f"{k} depths, one 2 SD better than the rest, {n0} seeds: it wins"
        figures.append((f"power_2sd_k{k}_n{n0}", _leader, (k, n0), goal, what, 1.0))
    for n in POWER_SEEDS_6[1:]:
        what = f"6 depths, one 2 SD better than the rest, {n} seeds: it wins"
        figures.append((f"power_2sd_k6_n{n}", _leader, (6, n), None, what, 0.25))
    figures.append((f"wrong_winner_2sd_n{n0}", _wrong, (), ("<=", 0.0), "2 depths 2 SD apart: the worse one wins", 1.0))
    figures.append(("trend_found", _trend, (0.5, False), (">=", 0.90), "6 depths, 0.5 SD per layer: a trend", 1.0))
    figures.append(("trend_flat", _trend, (0.0, False), ("<=", 0.05), "6 equal depths: a trend", 1.0))
    what = "6 depths, equal means, SD growing 0.5 per layer: a trend"
    figures.append(("trend_flat_growing_spread", _trend, (0.0, True), ("<=", 0.05), what, 1.0))
    what = f"95% per-depth interval, log-normal sigma 1, {n0} seeds: covers"
    figures.append(("coverage_lognormal", _coverage, ("lognormal",), (">=", 0.93), what, 1.0))
    what = f"95% per-depth interval, normal, {n0} seeds: covers"
    figures.append(("coverage_normal", _coverage, ("normal",), (">=", 0.93), what, 1.0))
    what = f"95% Welch difference interval, normal (SDs 1 and 2), {n0} seeds: covers"
    figures.append(("coverage_difference", _difference_coverage, (), (">=", 0.93), what, 1.0))
    what = "tuned and fixed from the same distributions, 3 depths: 'the conclusion changed'"
    figures.append(("settings_changed_null", _settings_null, (), ("<=", 0.05), what, 1.0))
    for kind in ("normal", "lognormal"):
        for k in (2, 4):
            what = (
                f"{k} equal depths, 3 searches each, search effect = seed effect, {kind}, {n0} seeds: a winner or "
                "a pair called"
            )
            figures.append(
                (f"replicates_null_{kind}_k{k}", _replicates_null, (k, 3, kind, True), ("<=", 0.05), what, 1.0)
            )
    what = (
        "the same, 2 depths, normal, every run counted as independent (no replicate level): a winner or a pair called"
    )
    figures.append(("replicates_null_runs_as_independent", _replicates_null, (2, 3, "normal", False), None, what, 1.0))
    for k in (2, 3):
        for searches in (3, 4, 5):
            goal = (">=", 0.80) if (k, searches) == (2, 3) else None
            what = f"{k} depths, {searches} searches each, one 2 total SDs better, {n0} seeds: it wins"
            figures.append((f"replicates_power_k{k}_r{searches}", _replicates_power, (k, searches), goal, what, 1.0))
    rounds = _auto_rounds()
    plan = ", ".join(map(str, rounds))
    what = f"seeds: auto (rounds {plan}), 2 equal depths: a winner at any round"
    figures.append(("sequential_0sd", _sequential, (rounds, 0.0), ("<=", 0.05), what, 1.0))
    what = f"seeds: auto (rounds {plan}), 2 depths 2 SD apart: the better one wins"
    figures.append(("sequential_2sd", _sequential, (rounds, 2.0), (">=", 0.90), what, 1.0))
    return figures


def _run_figure(index: int, reps: int, quick: bool) -> tuple[int, int, int]:
    name, trial, args, _, _, share = _figures(quick)[index]
    n = max(10, int(reps * share))
    g = np.random.default_rng([index, 2024])
    return index, sum(bool(trial(g, *args)) for _ in range(n)), n


def simulate(quick: bool, workers: int | None = None) -> dict[str, Any]:
    """Every figure as {"value", "goal", "met", "what", "replications"} under "figures", with the time taken."""
    reps = QUICK_REPLICATIONS if quick else REPLICATIONS
    started = time.perf_counter()
    figures = _figures(quick)
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    # The slowest figures (many depths) first, so that the pool ends together.
    order = sorted(range(len(figures)), key=lambda i: -(figures[i][2][0] if figures[i][1] is _leader else 0))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(_run_figure, order, [reps] * len(order), [quick] * len(order)))
    rows: dict[str, dict[str, Any]] = {}
    for index, hits, n in sorted(counts):
        name, _, _, goal, what, _ = figures[index]
        rows[name] = {
            "value": hits / n,
            "goal": None if goal is None else f"{goal[0]} {goal[1]:g}",
            "met": _met(hits, n, goal),
            "what": what,
            "replications": n,
        }
    return {
        "quick": quick,
        "replications": reps,
        "default_seeds": DEFAULT_SEEDS,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": rows,
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a plain-text table: name, value, goal, met, and what it measures."""
    rows = result["figures"]
    width = max(len(name) for name in rows)
    lines = [
        f"{'figure':<{width}}  {'value':>6}  {'goal':<7}  {'met':<4}  what",
        f"{'-' * width}  {'-' * 6}  {'-' * 7}  {'-' * 4}  {'-' * 4}",
    ]
    for name, row in rows.items():
        met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
        lines.append(f"{name:<{width}}  {row['value']:>6.3f}  {row['goal'] or '':<7}  {met:<4}  {row['what']}")
    lines.append(
        f"\n{result['replications']} replications per figure, DEFAULT_SEEDS = {result['default_seeds']}, "
        f"{result['seconds']} s. 'met': a one-sided binomial test of the rate against the goal does not reject at 1%."
    )
    return "\n".join(lines)


def compare_seconds(depths: int = 6, seeds: int = 10, repeats: int = 20) -> float:
    """The median wall-clock of one verdict (`compare`) on `depths` depths of `seeds` seeds each."""
    rng = np.random.default_rng(1)
    times = []
    for _ in range(repeats):
        losses = {d: rng.normal(1.0, 0.1, seeds) for d in range(1, depths + 1)}
        started = time.perf_counter()
        compare(losses)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """`make bench`'s entry: every figure under "figures", and the headline rows of the results table."""
    from . import common

    result = simulate(quick)
    figures = result["figures"]
    n0 = result["default_seeds"]

    def row(label: str, name: str) -> dict[str, Any]:
        f = figures[name]
        return common.row("verdict", label, f["value"], None, goal=f["goal"] or "", met=f["met"])

    aa = {name: f for name, f in figures.items() if name.startswith("aa_")}
    worst = max(aa.values(), key=lambda f: f["value"])
    rows = [
        common.row(
            "verdict",
            f"A/A: a winner between 2 depths neither better, worst of {len(aa)} (spread, shape, seeds, unbalanced): "
            + worst["what"].removeprefix("A/A, ").removesuffix(": a winner"),
            worst["value"],
            None,
            goal=worst["goal"],
            met=all(f["met"] for f in aa.values()),
        ),
        *[row(f"{k} equal depths, {n0} seeds: any depth called worse", f"familywise_k{k}") for k in range(3, 7)],
        *[row(f"power: one depth 2 SD better among {k}, {n0} seeds", f"power_2sd_k{k}_n{n0}") for k in range(2, 7)],
        *[row(f"power: one depth 2 SD better among 6, {n} seeds", f"power_2sd_k6_n{n}") for n in POWER_SEEDS_6[1:]],
        row(f"the worse of 2 depths 2 SD apart wins, {n0} seeds", f"wrong_winner_2sd_n{n0}"),
        row(f"trend: 0.5 SD per layer over 6 depths, {n0} seeds: found", "trend_found"),
        row(f"trend: 6 equal depths, {n0} seeds: called", "trend_flat"),
        row(
            f"trend: 6 depths, equal means, spread growing with depth, {n0} seeds: called", "trend_flat_growing_spread"
        ),
        row(f"95% per-depth interval covers, log-normal sigma 1, {n0} seeds", "coverage_lognormal"),
        row(f"95% per-depth interval covers, normal, {n0} seeds", "coverage_normal"),
        row(f"95% difference interval covers, normal, {n0} seeds", "coverage_difference"),
        row("tuned and fixed alike: 'the conclusion changed'", "settings_changed_null"),
        row("seeds: auto up to 20, 2 equal depths: a winner at any round", "sequential_0sd"),
        row("seeds: auto up to 20, 2 depths 2 SD apart: the better one wins", "sequential_2sd"),
    ]
    seconds = compare_seconds()
    rows.append(
        common.row(
            "verdict",
            "one verdict, 6 depths x 10 seeds (median)",
            seconds * 1000,
            None,
            goal="<= 500",
            met=seconds <= 0.5,
            unit="ms",
        )
    )
    return {"figures": result, "rows": rows}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPLICATIONS} replications, not {REPLICATIONS}")
    print(table(simulate(parser.parse_args().quick)))
