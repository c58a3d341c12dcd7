"""Comparing depths with uncertainty: which depths may be best, whether adding layers helps, and the intervals.

Losses are "lower is better" throughout. The measure of a difference is P(A beats B), the chance that a run of A
has the lower test loss than a run of B (ties count 1/2), as in Bouthillier et al. 2021 ("Accounting for variance in
machine learning benchmarks"), who call a difference meaningful when it is significant and at least ``gamma`` (0.75).

- The pairwise test is Brunner and Munzel's test of P(A beats B) = 1/2, which, unlike the Mann-Whitney test, does not
  assume that the two depths' losses have the same spread or shape. Its p-value comes from the studentized permutation
  distribution (Neubert & Brunner 2007), of the logit of the estimate (Pauly, Asendorf & Konietschke 2016), which
  keeps the level at a handful of runs: exact over every split up to 20,000 splits, else from 9,999 seeded random
  splits. Because only ranks enter, any finite loss scale gives the same answer.
- The best depth is found by comparisons with the best: the closed test of "depth d is one of the best" for every d
  (Marcus, Peritz & Gabriel 1976), each intersection tested by Bonferroni over its one-sided comparisons. A depth left
  out of the set that may be best is shown worse than some other depth, and the chance of leaving out a best depth,
  or any depth when all are equal, stays below ``1 - confidence``. It needs less evidence per comparison than testing
  all k(k-1)/2 pairs, which the report keeps as a description (Holm-adjusted).
- The trend (`trend.py`) is the least-squares change in mean test loss per added layer, with a Welch-Satterthwaite t
  interval that allows every depth its own spread; the verdict carries it.
- Per-depth intervals for positive losses are Cox's interval for a log-normal mean, which keeps its coverage for
  skewed losses where the t interval and the bootstrap do not at a few seeds; other losses get t intervals.
  Differences of means get Welch's interval.

A failed or diverged retraining (an infinite or NaN loss) is the worst possible outcome: it is ranked above every
finite loss and never dropped, so a depth cannot look better by failing; means and intervals leave it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .intervals import (
    Interval,
    _check_confidence,
    _check_looks,
    _json_float,
    _samples,
    _welch,
    difference_ci,
    mean_ci,
    mean_interval,
)
from .pairwise import MIN_RUNS, MIN_RUNS_UNBALANCED, _brunner_munzel, _enough_runs, _smallest_p, _Test
from .replicates import MIN_REPLICATES, clustered, replicate_means, replicate_test
from .trend import Trend, trend
from .wording import depths_phrase

__all__ = [
    "DEFAULT_SEEDS",
    "MIN_RUNS",
    "MIN_RUNS_UNBALANCED",
    "Interval",
    "Pair",
    "Trend",
    "Verdict",
    "compare",
    "difference_ci",
    "mean_ci",
    "mean_interval",
    "min_seeds",
    "trend",
]

# The default number of evaluation seeds per depth (benchmarks/verdict.py measures what it gives: the power to name
# one depth 2 seed-SDs better among 2 to 6 depths, and the level under unequal spreads and skew).
DEFAULT_SEEDS = 8


@dataclass(frozen=True)
class Pair:
    """Depth ``a`` against depth ``b`` (a < b), as a description of the two depths' runs.

    ``p_a_better`` is P(a's loss < b's loss) over all pairs of runs, ties counting 1/2, with its interval
    ``p_a_better_ci``; ``p_value`` is the two-sided Brunner-Munzel permutation p-value and ``p_adjusted`` the same
    after Holm's correction over all pairs and the Bonferroni factor for ``looks``. ``better`` is the depth the
    all-pairs rule shows better, or None. ``difference`` is mean(a) - mean(b) with its Welch interval, None when
    either side has a failed run (the mean is infinite) or the value does not fit a float. ``decidable`` is False
    when these run counts can never reach significance under the rule: too few seeds.
    """

    a: int
    b: int
    better: int | None
    p_a_better: float
    p_value: float
    p_adjusted: float
    difference: float | None
    difference_ci: Interval | None
    n_a: int
    n_b: int
    decidable: bool
    p_a_better_ci: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; intervals as ``[low, high]`` or None."""
        return {
            "a": int(self.a),
            "b": int(self.b),
            "better": None if self.better is None else int(self.better),
            "p_a_better": float(self.p_a_better),
            "p_a_better_ci": None if self.p_a_better_ci is None else self.p_a_better_ci.as_list(),
            "p_value": float(self.p_value),
            "p_adjusted": float(self.p_adjusted),
            "difference": _json_float(self.difference),
            "difference_ci": None if self.difference_ci is None else self.difference_ci.as_list(),
            "n_a": int(self.n_a),
            "n_b": int(self.n_b),
            "decidable": bool(self.decidable),
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing the depths.

    ``best_set`` is the set of depths that may be best (a depth outside it is shown worse than some other depth, and
    the chance that a best depth is left out is below 1 - confidence); ``winner`` is its only member when it has one;
    ``tied`` is the same set (kept under its older name). ``undecided`` is True when there is no winner and the seeds
    were too few for the set ever to shrink, and then ``needed_seeds`` is the fewest seeds per depth that could.
    ``pairs`` describe every pair; ``trend`` is the change per added layer (None below three depths). ``summary`` says
    the outcome as a clause without a capital or a full stop, ``rule`` the rule in plain sentences.
    """

    winner: int | None
    tied: list[int] = field(default_factory=list)
    undecided: bool = False
    pairs: list[Pair] = field(default_factory=list)
    rule: str = ""
    needed_seeds: int | None = None
    summary: str = ""
    best_set: list[int] = field(default_factory=list)
    trend: Trend | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``json.dumps(..., allow_nan=False)`` works); pairs as dicts."""
        return {
            "winner": None if self.winner is None else int(self.winner),
            "tied": [int(d) for d in self.tied],
            "best_set": [int(d) for d in self.best_set],
            "undecided": bool(self.undecided),
            "pairs": [p.to_dict() for p in self.pairs],
            "trend": None if self.trend is None else self.trend.to_dict(),
            "rule": self.rule,
            "needed_seeds": None if self.needed_seeds is None else int(self.needed_seeds),
            "summary": self.summary,
        }


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as ``p``)."""
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def min_seeds(n_depths: int, *, confidence: float = 0.95, looks: int = 1) -> int:
    """The fewest seeds per depth (the same for every depth) with which the rule can ever leave a depth out of the
    set that may be best: at least MIN_RUNS, and enough for the closed test's strictest step (every depth at once,
    ``alpha / (k (k - 1))`` one-sided) to be reachable. A single depth needs one seed (it wins alone)."""
    alpha = _check_confidence(confidence)
    looks = _check_looks(looks)
    if isinstance(n_depths, bool) or int(n_depths) != n_depths or n_depths < 1:
        raise ValueError(f"n_depths must be a positive integer, got {n_depths}")
    k = int(n_depths)
    if k == 1:
        return 1
    n = MIN_RUNS
    while _smallest_p(n, n) >= alpha / (looks * k * (k - 1)):
        n += 1
    return n


# ----------------------------------------------------------------------------- the set that may be best


def _evidence_against(depths: list[int], tests: dict[tuple[int, int], _Test], gamma: float) -> dict[int, float]:
    """For each depth, the smallest one-sided p-value of another depth beating it by at least ``gamma``."""
    q = {d: 1.0 for d in depths}
    for (a, b), test in tests.items():
        if test.auc >= gamma:  # a beats b
            q[b] = min(q[b], test.p_x_better)
        if 1.0 - test.auc >= gamma:
            q[a] = min(q[a], test.p_y_better)
    return q


def _excluded(depth: int, q: dict[int, float], alpha: float) -> bool:
    """Whether the closed test rejects "``depth`` is one of the best".

    The intersection "every depth of S is one of the best" is tested by Bonferroni over its |S| (k - 1) one-sided
    comparisons: rejected when the smallest p-value against a member of S is below alpha / (|S| (k - 1)). ``depth``
    is left out when every S holding it is rejected; of the sets of a size, the hardest holds the depths with the
    least evidence against them, so checking those k sets is enough.
    """
    k = len(q)
    others = sorted((v for d, v in q.items() if d != depth), reverse=True)
    for size in range(1, k + 1):
        smallest = min([q[depth], *others[: size - 1]])
        if smallest >= alpha / (size * (k - 1)):
            return False
    return True


def _best_set(depths: list[int], q: dict[int, float], alpha: float) -> list[int]:
    if len(depths) == 1:
        return list(depths)
    return [d for d in depths if not _excluded(d, q, alpha)]


# ----------------------------------------------------------------------------- verdict


def _seed_count(counts: Sequence[int]) -> str:
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return f"{lo} seed{'' if lo == 1 else 's'}"
    return f"{lo} to {hi} seeds per depth"


def _summary(depths: list[int], best: list[int], needed: int | None, counts: list[int]) -> str:
    if len(depths) == 1:
        return f"depth {depths[0]} wins, being the only depth compared"
    if len(best) == 1:
        return f"depth {best[0]} wins"
    if needed is not None:
        per_depth = " per depth" if min(counts) != max(counts) else ""
        between = depths_phrase(depths)
        return f"{_seed_count(counts)} cannot decide between {between}; at least {needed}{per_depth} are needed"
    if len(best) == len(depths):
        return "no depth is shown worse than the best"
    out = [d for d in depths if d not in best]
    return f"{depths_phrase(best)} may be best ({depths_phrase(out)} {'is' if len(out) == 1 else 'are'} not)"


def _rule(alpha: float, gamma: float, looks: int, n_depths: int) -> str:
    level = f"{alpha * 100:.3g}%"
    split = f", split over {looks} looks" if looks > 1 else ""
    return (
        f"A depth is left out of the set that may be best when the data show some other depth beats it: Brunner and "
        f"Munzel's test of P(a run of one depth has the lower test loss than a run of the other) = 1/2, which allows "
        f"the depths different spreads, one-sided and studentized by permutation, with that probability at least "
        f"{gamma:g} (Bouthillier et al. 2021; a failed run counting as the worst loss). The comparisons with the "
        f"best form a closed test over the {n_depths} depths at the {level} level{split}, so the chance of leaving "
        "out a best depth is at most that. The winner is the only depth left in the set. The pairwise table "
        "describes every pair, Holm-adjusted."
    )


def compare(
    losses_by_depth: Mapping[int, Sequence[float]],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float = 0.75,
    looks: int = 1,
    replicates: Mapping[int, Sequence[int]] | None = None,
) -> Verdict:
    """Names the set of depths that may be best by their retrained test losses (its only member is the winner), the
    trend with depth, and describes every pair.

    Each pair is tested with the studentized permutation Brunner-Munzel test (unpaired; the depths may have
    different numbers of runs and different spreads). The set that may be best comes from the closed test of the
    comparisons with the best at level alpha = 1 - confidence; a pair is called in ``pairs`` when its Holm-adjusted
    two-sided p-value is below alpha. Either call also needs the better depth to win with probability at least
    ``gamma``. NaN and infinite losses are failed runs, ranked worst.

    ``looks``: when seeds are added in rounds and compare() is called after each, pass the most rounds planned; each
    call then tests at alpha / looks, so by the union bound a false call over all rounds stays below alpha. Random
    splits are drawn from ``seed``, so the same inputs and seed always give the same verdict.

    ``replicates`` gives, for each depth, the replicate search each loss's configuration came from. When a depth
    was searched more than once, every test, the trend and the set that may be best work on the searches' mean
    losses instead of the runs (see replicates.py), so the variation between searches counts.

    A single depth is the winner by default. Raises ValueError on no depths, an empty loss list, a depth given twice,
    non-numeric losses, confidence outside (0, 1), gamma outside [0.5, 1), looks below 1 or a non-integer seed.
    """
    alpha = _check_confidence(confidence)
    looks = _check_looks(looks)
    if not 0.5 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0.5, 1), got {gamma}")
    if isinstance(seed, bool) or int(seed) != seed:
        raise ValueError(f"seed must be an integer, got {seed}")
    samples = _samples(losses_by_depth)
    depths = sorted(samples)
    counts = [samples[d].size for d in depths]
    index = [(a, b) for i, a in enumerate(depths) for b in depths[i + 1 :]]
    by_search = clustered(replicates)
    if by_search:
        missing = [d for d in depths if d not in replicates]
        if missing:
            raise ValueError(f"no replicate numbers for depth {missing[0]}")
        samples = {d: replicate_means(samples[d], replicates[d]) for d in depths}
    pair_test = replicate_test if by_search else _test
    tests = {
        (a, b): pair_test(samples[a], samples[b], np.random.default_rng([int(seed) % 2**64, i]), confidence)
        for i, (a, b) in enumerate(index)
    }
    floor_p = _replicate_floor if by_search else _smallest_p
    level = alpha / looks
    best = _best_set(depths, _evidence_against(depths, tests, gamma), level)
    pairs = _pairs(samples, index, tests, level=level, looks=looks, gamma=gamma, confidence=confidence, floor=floor_p)
    winner = best[0] if len(best) == 1 else None
    undecided = winner is None and not _can_shrink(depths, samples, best, level, floor=floor_p)
    needed = min_seeds(len(depths), confidence=confidence, looks=looks) if undecided and not by_search else None
    summary = _summary(depths, best, needed, counts)
    if undecided and by_search:
        summary = f"fewer than {MIN_REPLICATES} searches of a depth cannot decide between {depths_phrase(depths)}"
    return Verdict(
        winner=winner,
        tied=list(best),
        best_set=list(best),
        undecided=undecided,
        pairs=pairs,
        rule=(_replicate_rule if by_search else _rule)(alpha, gamma, looks, len(depths)),
        needed_seeds=needed,
        summary=summary,
        trend=trend(samples, confidence=confidence, looks=looks) if len(depths) >= 3 else None,
    )


def _replicate_floor(n_a: int, n_b: int) -> float:
    """The smallest one-sided p-value Welch's test on replicate means can give: none below two searches a side,
    else as small as the data make it."""
    return 0.0 if min(n_a, n_b) >= MIN_REPLICATES else 1.0


def _replicate_rule(alpha: float, gamma: float, looks: int, n_depths: int) -> str:
    level = f"{alpha * 100:.3g}%"
    split = f", split over {looks} looks" if looks > 1 else ""
    return (
        "Each depth was searched several times, and each search's configuration retrained over the seeds: a search "
        "is one observation, its mean test loss. A depth is left out of the set that may be best when the data show "
        "some other depth beats it: Welch's one-sided t test on the searches' mean test losses (on the log scale "
        "for positive losses), which allows the depths different spreads between searches, with the probability "
        f"that a search of the better depth ends lower at least {gamma:g} (Bouthillier et al. 2021). The "
        f"comparisons with the best form a closed test over the {n_depths} depths at the {level} level{split}, so "
        "the chance of leaving out a best depth is at most that. The winner is the only depth left in the set. The "
        "pairwise table describes every pair, Holm-adjusted."
    )


def _test(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, confidence: float) -> _Test:
    """The pair's test, or no evidence either way with too few runs on a side (its interval is still given)."""
    if min(x.size, y.size) < 2:  # no spread to estimate: the estimate alone, with the widest interval
        auc = float(np.mean((x[:, None] < y[None, :]) + 0.5 * (x[:, None] == y[None, :])))
        return _Test(auc=auc, ci=Interval(0.0, 1.0, "brunner-munzel"), p_x_better=1.0, p_y_better=1.0)
    test = _brunner_munzel(x, y, rng, confidence)
    if not _enough_runs(x.size, y.size):
        return _Test(auc=test.auc, ci=test.ci, p_x_better=1.0, p_y_better=1.0)
    return test


def _can_shrink(
    depths: list[int], samples: dict[int, np.ndarray], best: list[int], level: float, *, floor=_smallest_p
) -> bool:
    """Whether these run counts let the closed test leave any depth of ``best`` out at all: every comparison at its
    smallest attainable p-value (``floor``: complete separation) is the best case for each."""
    strongest = floor
    floor = {
        d: min(strongest(samples[d].size, samples[o].size) for o in depths if o != d) for d in depths
    }  # the strongest evidence the counts allow against each depth
    return len(depths) > 1 and any(_excluded(d, floor, level) for d in best)


def _pairs(
    samples: dict[int, np.ndarray],
    index: list[tuple[int, int]],
    tests: dict[tuple[int, int], _Test],
    *,
    level: float,
    looks: int,
    gamma: float,
    confidence: float,
    floor=_smallest_p,
) -> list[Pair]:
    """Every pair as a description: Holm-adjusted two-sided p-values, the call, the difference of means."""
    if not index:
        return []
    raw = np.array([tests[ab].p_two_sided for ab in index])
    adjusted = np.minimum(1.0, looks * _holm(raw))
    floor = np.array([min(1.0, 2.0 * floor(samples[a].size, samples[b].size)) for a, b in index])
    decidable = _holm(floor) < level
    pairs = []
    for (a, b), p_adj, can in zip(index, adjusted, decidable, strict=True):
        test = tests[(a, b)]
        better = None
        if p_adj < 1.0 - confidence and max(test.auc, 1.0 - test.auc) >= gamma:
            better = a if test.auc > 0.5 else b
        x, y = samples[a], samples[b]
        diff: float | None = None
        diff_ci: Interval | None = None
        if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
            d, ci = _welch(x, y, confidence)
            diff = d if math.isfinite(d) else None
            if x.size > 1 and y.size > 1 and diff is not None and math.isfinite(ci.low) and math.isfinite(ci.high):
                diff_ci = ci
        pairs.append(
            Pair(
                a=a,
                b=b,
                better=better,
                p_a_better=test.auc,
                p_a_better_ci=test.ci,
                p_value=test.p_two_sided,
                p_adjusted=float(p_adj),
                difference=diff,
                difference_ci=diff_ci,
                n_a=int(x.size),
                n_b=int(y.size),
                decidable=bool(can),
            )
        )
    return pairs
