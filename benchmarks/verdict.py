"""How often the depth verdict is wrong, how often it finds a real difference, and how well its intervals cover.

Simulated searches with known answers, run through ``stacktune.search.analysis.stats``:

- A/A: two depths drawn from one normal distribution; the share of searches naming a winner, per seed count 2..30.
- family-wise: 3 to 6 depths from one distribution at DEFAULT_SEEDS; the share of searches calling any depth beaten.
- power: two depths, one 1 or 2 seed-standard-deviations better (normal); the share naming it the winner, and
  (2 SD) the share naming the worse one; and with 3 to 6 depths, one 2 SD better than all the others.
- coverage: the share of difference_ci intervals holding the true difference of means, normal and lognormal(0.3).

Each figure uses its own seeded generator, so a run is reproducible. "met" means the observed rate is consistent with
the goal: a one-sided binomial test of the rate against the goal does not reject at 1%, which allows for Monte Carlo
error (about 0.5 percentage points at 2,000 replications).

    make bench (with the other benchmarks), or: .venv/bin/python -m benchmarks.verdict [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import stats

from stacktune.search.analysis.stats import DEFAULT_SEEDS, compare, difference_ci

REPLICATIONS = 2_000
QUICK_REPLICATIONS = 200
AA_SEEDS = tuple(range(2, 31))
POWER_SEEDS = (3, 4, 5, 6, 7, 8, 10, 12, 15, 20)
COVERAGE_SEEDS = (3, 5, 8, 10)
LOGNORMAL_SIGMA = 0.3
LOGNORMAL_SHIFT = 0.2


def _rate(hits: int, reps: int) -> float:
    return hits / reps


def _met(hits: int, reps: int, goal: tuple[str, float] | None) -> bool | None:
    """Whether the observed count is consistent with the goal (one-sided binomial test at 1%), None without one."""
    if goal is None:
        return None
    direction, target = goal
    if target <= 0.0:
        return hits == 0
    alternative = "greater" if direction == "<=" else "less"
    return bool(stats.binomtest(hits, reps, target, alternative=alternative).pvalue >= 0.01)


def _count(reps: int, seed: int, trial: Callable[[np.random.Generator], bool]) -> int:
    rng = np.random.default_rng(seed)
    return sum(bool(trial(rng)) for _ in range(reps))


def _figure(rows: dict, name: str, hits: int, reps: int, goal: tuple[str, float] | None, what: str) -> None:
    rows[name] = {
        "value": _rate(hits, reps),
        "goal": None if goal is None else f"{goal[0]} {goal[1]:g}",
        "met": _met(hits, reps, goal),
        "what": what,
    }


def _lognormal_mean(mu: float) -> float:
    return math.exp(mu + LOGNORMAL_SIGMA**2 / 2.0)


def _auto_rounds() -> list[int]:
    """The seed counts of `evaluation: {seeds: auto, max_seeds: 20}` for two depths, as a search plans them."""
    from stacktune.search.analysis.evaluation import seed_rounds
    from stacktune.search.spec.schema import SearchSpec

    spec = {"name": "sim", "dataset": {"name": "sine"}, "depths": [1, 2], "trials_per_depth": 1}
    return seed_rounds(SearchSpec.model_validate({**spec, "evaluation": {"seeds": "auto", "max_seeds": 20}}))


def simulate(quick: bool) -> dict[str, Any]:
    """Every figure as {"value", "goal", "met", "what"} under "figures", with the sizes and the time taken."""
    reps = QUICK_REPLICATIONS if quick else REPLICATIONS
    n0 = DEFAULT_SEEDS
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}

    for n in AA_SEEDS:
        hits = _count(
            reps, 100 + n, lambda g, n=n: compare({1: g.normal(0, 1, n), 2: g.normal(0, 1, n)}).winner is not None
        )
        _figure(rows, f"aa_winner_rate_n{n}", hits, reps, ("<=", 0.05), f"A/A, 2 equal depths, {n} seeds: a winner")

    for k in range(3, 7):

        def null(g: np.random.Generator, k: int = k) -> bool:
            verdict = compare({d: g.normal(0, 1, n0) for d in range(1, k + 1)})
            return any(p.better is not None for p in verdict.pairs)

        _figure(
            rows,
            f"familywise_beaten_rate_k{k}",
            _count(reps, 200 + k, null),
            reps,
            ("<=", 0.05),
            f"{k} equal depths, {n0} seeds: any depth beaten",
        )

    for sd in (1, 2):
        for n in sorted(set(POWER_SEEDS) | {n0}):
            hits = _count(
                reps,
                300 + 10 * sd + n,
                lambda g, sd=sd, n=n: compare({1: g.normal(-sd, 1, n), 2: g.normal(0, 1, n)}).winner == 1,
            )
            goal = (">=", 0.90) if (sd == 2 and n == n0) else None
            _figure(rows, f"power_{sd}sd_n{n}", hits, reps, goal, f"2 depths {sd} SD apart, {n} seeds: better one wins")
    hits = _count(reps, 400 + n0, lambda g: compare({1: g.normal(-2, 1, n0), 2: g.normal(0, 1, n0)}).winner == 2)
    what = f"2 depths 2 SD apart, {n0} seeds: worse one wins"
    _figure(rows, f"wrong_winner_2sd_n{n0}", hits, reps, ("<=", 0.0), what)

    for k in range(3, 7):

        def leader(g: np.random.Generator, k: int = k) -> bool:
            losses = {d: g.normal(0, 1, n0) for d in range(1, k + 1)}
            losses[1] = losses[1] - 2.0
            return compare(losses).winner == 1

        _figure(
            rows,
            f"power_2sd_k{k}_n{n0}",
            _count(reps, 500 + k, leader),
            reps,
            None,
            f"{k} depths, one 2 SD better than the rest, {n0} seeds: it wins",
        )

    rounds = _auto_rounds()
    for sd, goal in ((0, ("<=", 0.05)), (2, (">=", 0.90))):

        def sequential(g: np.random.Generator, sd: int = sd) -> bool:
            a, b = g.normal(-sd, 1, rounds[-1]), g.normal(0, 1, rounds[-1])
            for n in rounds:
                winner = compare({1: a[:n], 2: b[:n]}, looks=len(rounds)).winner
                if winner is not None:
                    return winner == 1 if sd else True
            return False

        what = f"seeds: auto (rounds {', '.join(map(str, rounds))}), 2 depths {sd} SD apart: "
        _figure(rows, f"sequential_{sd}sd", _count(reps, 800 + sd, sequential), reps, goal, what + "a winner")

    true_log = _lognormal_mean(0.0) - _lognormal_mean(LOGNORMAL_SHIFT)
    for n in sorted(set(COVERAGE_SEEDS) | {n0}):
        goal = (">=", 0.93) if n == n0 else None

        def normal(g: np.random.Generator, n: int = n) -> bool:
            _, ci = difference_ci(g.normal(1.0, 1.0, n), g.normal(0.3, 2.0, n))
            return ci.low <= 0.7 <= ci.high

        def lognormal(g: np.random.Generator, n: int = n) -> bool:
            a = g.lognormal(0.0, LOGNORMAL_SIGMA, n)
            b = g.lognormal(LOGNORMAL_SHIFT, LOGNORMAL_SIGMA, n)
            _, ci = difference_ci(a, b)
            return ci.low <= true_log <= ci.high

        _figure(
            rows,
            f"coverage_normal_n{n}",
            _count(reps, 600 + n, normal),
            reps,
            goal,
            f"95% Welch interval, normal (SDs 1 and 2), {n} seeds: covers",
        )
        _figure(
            rows,
            f"coverage_lognormal_n{n}",
            _count(reps, 700 + n, lognormal),
            reps,
            goal,
            f"95% Welch interval, lognormal(sigma {LOGNORMAL_SIGMA}), {n} seeds: covers",
        )

    return {
        "quick": quick,
        "replications": reps,
        "default_seeds": n0,
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

    aa = max((f for name, f in figures.items() if name.startswith("aa_winner_rate_")), key=lambda f: f["value"])
    rows = [
        common.row(
            "verdict",
            f"A/A: a winner among 2 equal depths, worst of 2..30 seeds ({aa['what'].split(', ')[2].split(':')[0]})",
            aa["value"],
            None,
            goal=aa["goal"],
            met=all(f["met"] for name, f in figures.items() if name.startswith("aa_winner_rate_")),
        ),
        *[row(f"{k} equal depths, {n0} seeds: any depth beaten", f"familywise_beaten_rate_k{k}") for k in range(3, 7)],
        row(f"power: 2 depths 2 SD apart, {n0} seeds", f"power_2sd_n{n0}"),
        row(f"power: 2 depths 1 SD apart, {n0} seeds", f"power_1sd_n{n0}"),
        row(f"the worse of 2 depths 2 SD apart wins, {n0} seeds", f"wrong_winner_2sd_n{n0}"),
        row("seeds: auto up to 20, 2 equal depths: a winner at any round", "sequential_0sd"),
        row("seeds: auto up to 20, 2 depths 2 SD apart: the better one wins", "sequential_2sd"),
        row(f"95% difference interval covers, normal, {n0} seeds", f"coverage_normal_n{n0}"),
        row(f"95% difference interval covers, lognormal(0.3), {n0} seeds", f"coverage_lognormal_n{n0}"),
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
