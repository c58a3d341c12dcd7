"""Comparing depths with uncertainty: which depth's retrained test losses are lower (budget curves: curves.py).

Losses are "lower is better" throughout. The verdict follows Bouthillier et al. 2021 ("Accounting for variance in
machine learning benchmarks"): depth A is better than depth B when P(A beats B), the chance that a run of A has the
lower test loss than a run of B, is both significantly different from 1/2 and at least ``gamma`` (0.75), their
threshold of a meaningful difference. Significance comes from an exact two-sided permutation test of that
probability (the Mann-Whitney statistic), unpaired, with Holm's step-down correction over every pair of depths
(Holm 1979, "A simple sequentially rejective multiple test procedure"), so that the chance of calling any difference
among equal depths stays below ``1 - confidence`` however many depths and seeds there are.

A failed or diverged retraining (an infinite or NaN loss) is the worst possible outcome: it is ranked above every
finite loss and never dropped, so a depth cannot look better by failing.

Intervals are t intervals (Welch's for differences of means), which keep their coverage at the handful of seeds a
retraining budget allows. The permutation test is computed exactly (by counting, not enumerating) up to about 50 runs
per depth, and from 9,999 seeded random splits beyond, so the same inputs and seed give the same verdict.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special as _special
from scipy import stats as _st

from .wording import depths_phrase

__all__ = [
    "DEFAULT_SEEDS",
    "Interval",
    "Pair",
    "Verdict",
    "compare",
    "difference_ci",
    "mean_ci",
    "min_seeds",
]

# The default number of evaluation seeds per depth: the smallest count at which two depths 2 seed-standard-deviations
# apart (normal losses) get the better one named the winner in at least 90% of searches (6 seeds: 0.82, 7: 0.89,
# 8: 0.95) and the worse one never (0 of 2,000), while equal depths get a false call in at most 5% of searches, which
# the exact test and Holm's correction guarantee at any count (at 8 seeds: a winner among 2 equal depths 0.046, any
# depth beaten among 3/4/5/6 equal depths 0.030/0.041/0.041/0.045). It is also enough for any pair of up to 6 depths
# to be decidable (min_seeds(6) == 6), and the 95% Welch difference interval covers 0.948 (normal) and 0.952
# (lognormal, sigma 0.3). Measured with benchmarks/verdict.py, 2,000 simulated searches per figure. More depths
# need more seeds for the same power: one depth 2 SD better than all the others wins in 80%, 61%, 47% and 24% of
# searches among 3, 4, 5 and 6 depths at 8 seeds (Holm's price for testing every pair); 6 depths need about 15.
DEFAULT_SEEDS = 8


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high]."""

    low: float
    high: float

    def as_list(self) -> list[float]:
        """The interval as a plain ``[low, high]`` list."""
        return [float(self.low), float(self.high)]


@dataclass(frozen=True)
class Pair:
    """Depth ``a`` against depth ``b`` (a < b).

    ``p_a_better`` is P(a's loss < b's loss) over all pairs of runs, ties counting 1/2 (the Mann-Whitney AUC);
    ``p_value`` is the raw two-sided permutation p-value of that statistic and ``p_adjusted`` the same after
    Holm's correction over all pairs and the Bonferroni factor for ``looks``. ``better`` is the depth shown better,
    or None. ``difference`` is mean(a) - mean(b) with its Welch interval, None when either side has a failed run
    (the mean is infinite) and, for the interval, when either side has a single run (it would be unbounded).
    ``decidable`` is False when these run counts can never reach significance under the rule: too few seeds.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; the interval as ``[low, high]`` or None."""
        return {
            "a": int(self.a),
            "b": int(self.b),
            "better": None if self.better is None else int(self.better),
            "p_a_better": float(self.p_a_better),
            "p_value": float(self.p_value),
            "p_adjusted": float(self.p_adjusted),
            "difference": None if self.difference is None else float(self.difference),
            "difference_ci": None if self.difference_ci is None else self.difference_ci.as_list(),
            "n_a": int(self.n_a),
            "n_b": int(self.n_b),
            "decidable": bool(self.decidable),
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing the depths.

    ``winner`` is the depth better than every other (None if there is none); ``tied`` the depths no other depth is
    shown better than (the top group; ``[winner]`` when there is a winner); ``undecided`` is True when there is no
    winner and the seeds were too few for some comparison involving the top group ever to be called, and then
    ``needed_seeds`` is the fewest seeds per depth that could decide it. ``summary`` says the outcome as a clause
    without a capital or a full stop ("depth 2 wins"), ``rule`` the rule in plain sentences.
    """

    winner: int | None
    tied: list[int] = field(default_factory=list)
    undecided: bool = False
    pairs: list[Pair] = field(default_factory=list)
    rule: str = ""
    needed_seeds: int | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``json.dumps`` works); pairs as dicts."""
        return {
            "winner": None if self.winner is None else int(self.winner),
            "tied": [int(d) for d in self.tied],
            "undecided": bool(self.undecided),
            "pairs": [p.to_dict() for p in self.pairs],
            "rule": self.rule,
            "needed_seeds": None if self.needed_seeds is None else int(self.needed_seeds),
            "summary": self.summary,
        }


# ----------------------------------------------------------------------------- checks


def _sample(values: Sequence[float], name: str = "values") -> np.ndarray:
    """A non-empty, finite, one-dimensional float array, or ValueError."""
    x = _losses(values, name)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values: {x.tolist()}")
    return x


def _losses(values: Sequence[float], name: str) -> np.ndarray:
    """A non-empty one-dimensional float array (non-finite values allowed), or ValueError."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {values!r}") from None
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    return x


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return 1.0 - confidence


def _check_looks(looks: int) -> int:
    if isinstance(looks, bool) or int(looks) != looks or looks < 1:
        raise ValueError(f"looks must be a positive integer, got {looks}")
    return int(looks)


# ----------------------------------------------------------------------------- intervals


def mean_ci(values: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, Interval]:
    """The mean and its t interval (Student, n - 1 degrees of freedom); a single value gives ``[v, v]``.

    ``seed`` is accepted for callers and unused: the interval is not random. Raises ValueError on empty input or
    NaN/inf values (callers leave failed runs out of a mean).
    """
    _check_confidence(confidence)
    x = _sample(values)
    mean = float(x.mean())
    if x.size == 1:
        return mean, Interval(mean, mean)
    half = float(_special.stdtrit(x.size - 1, 0.5 + confidence / 2.0) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, Interval(mean - half, mean + half)


def _welch(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, Interval]:
    """mean(x) - mean(y) and its Welch interval, equal to scipy's ``ttest_ind(x, y, equal_var=False)`` one."""
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, Interval(-math.inf, math.inf)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = vx + vy
    if se2 == 0.0:
        return diff, Interval(diff, diff)
    df = se2**2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(_special.stdtrit(df, 0.5 + confidence / 2.0) * math.sqrt(se2))
    return diff, Interval(diff - half, diff + half)


def difference_ci(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> tuple[float, Interval]:
    """``mean(a) - mean(b)`` and its Welch t interval (unequal variances, unpaired).

    The same interval as ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)``. With a
    single value on either side the spread of that side is unknown and the interval is ``(-inf, inf)``; with no
    spread on both sides it is the point. Raises ValueError on empty input or NaN/inf values.
    """
    _check_confidence(confidence)
    return _welch(_sample(a, "a"), _sample(b, "b"), confidence)


# ----------------------------------------------------------------------------- the permutation test


# The exact test's table work (items x subset sizes x sums) above which the p-value is drawn from random splits
# instead: about 0.1-0.2 s of work, reached at about 50 + 50 runs, where exact enumeration stops paying.
_EXACT_WORK = 40_000_000
_RESAMPLES = 9_999


@functools.lru_cache(maxsize=512)
def _null_cdf(weights: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(S <= s) and P(S >= s) for s = 0..max, S the sum of ``k`` of ``weights`` drawn without replacement.

    Counts every k-subset once (dynamic programming over the items), which is the exact permutation distribution
    of a rank-sum statistic: what ``scipy.stats.permutation_test`` enumerates, without enumerating.
    """
    top = sum(sorted(weights)[len(weights) - k :])
    counts = np.zeros((k + 1, top + 1))
    counts[0, 0] = 1.0
    for i, w in enumerate(weights):
        j = min(i + 1, k)
        counts[1 : j + 1, w:] += counts[:j, : top + 1 - w].copy()
    dist = counts[k] / counts[k].sum()
    return np.cumsum(dist), np.cumsum(dist[::-1])[::-1]


def _is_exact(n_a: int, n_b: int) -> bool:
    """Whether the exact distribution is cheap enough: its table work, for untied doubled ranks, within budget."""
    n, k = n_a + n_b, min(n_a, n_b)
    return n * (k + 1) * (k * (2 * n - k + 1) + 1) <= _EXACT_WORK


def _rank_test(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """P(x beats y) (lower wins, ties 1/2) and the two-sided permutation p-value of it.

    Infinite values are ordinary largest values here: ties among them share their mid-rank. The p-value is
    ``min(1, 2 * min(P(T <= t), P(T >= t)))`` over the splits of the pooled runs, as scipy's permutation_test:
    exact over every split, or for large counts over ``_RESAMPLES`` random ones drawn with ``rng``.
    """
    auc = float(((x[:, None] < y[None, :]) + 0.5 * (x[:, None] == y[None, :])).mean())
    pooled = np.concatenate([x, y])
    doubled = np.rint(2.0 * _st.rankdata(pooled)).astype(np.int64)  # mid-ranks are halves: make them integers
    if not _is_exact(x.size, y.size):
        result = _st.permutation_test(
            (doubled[: x.size], doubled[x.size :]),
            lambda a, b, axis: a.sum(axis=axis),
            permutation_type="independent",
            vectorized=True,
            n_resamples=_RESAMPLES,
            alternative="two-sided",
            rng=rng,
        )
        return auc, float(result.pvalue)
    doubled //= np.gcd.reduce(doubled)
    small, k = (doubled[: x.size], x.size) if x.size <= y.size else (doubled[x.size :], y.size)
    at_most, at_least = _null_cdf(tuple(sorted(doubled.tolist())), k)
    t = int(small.sum())
    return auc, float(min(1.0, 2.0 * min(at_most[t], at_least[t])))


def _smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the test can give with these run counts (complete separation)."""
    if not _is_exact(n_a, n_b):
        return 2.0 / (_RESAMPLES + 1)  # scipy's randomized p-value counts the observed split once
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as ``p``)."""
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def min_seeds(n_depths: int, *, confidence: float = 0.95, looks: int = 1) -> int:
    """The fewest seeds per depth (the same for every depth) with which the rule can ever call a pair.

    With m = n_depths (n_depths - 1) / 2 pairs, Holm's first step needs the smallest p-value below
    alpha / (m * looks); the exact test's smallest is 2 / C(2n, n). A single depth needs one seed (it wins alone).
    """
    alpha = _check_confidence(confidence)
    looks = _check_looks(looks)
    if isinstance(n_depths, bool) or int(n_depths) != n_depths or n_depths < 1:
        raise ValueError(f"n_depths must be a positive integer, got {n_depths}")
    m = int(n_depths) * (int(n_depths) - 1) // 2
    if m == 0:
        return 1
    n = 1
    while looks * m * _smallest_p(n, n) >= alpha:
        n += 1
    return n


# ----------------------------------------------------------------------------- verdict


def _relations(beats: dict[int, list[int]]) -> str:
    return "; ".join(f"depth {w} beats {depths_phrase(losers)}" for w, losers in sorted(beats.items()) if losers)


def _seed_count(counts: Sequence[int]) -> str:
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return f"{lo} seed{'' if lo == 1 else 's'}"
    return f"{lo} to {hi} seeds per depth"


def _summary(
    depths: list[int],
    winner: int | None,
    tied: list[int],
    beats: dict[int, list[int]],
    needed: int | None,
    counts: list[int],
) -> str:
    if len(depths) == 1:
        return f"depth {depths[0]} wins, being the only depth compared"
    if winner is not None:
        return f"depth {winner} wins"
    if needed is not None:
        per_depth = " per depth" if min(counts) != max(counts) else ""
        between = depths_phrase(depths)
        return f"{_seed_count(counts)} cannot decide between {between}; at least {needed}{per_depth} are needed"
    beaten = {d for losers in beats.values() for d in losers}
    if not beaten:
        return "no depth is shown better than another"
    if len(beaten) == len(depths):
        return f"no depth is unbeaten ({_relations(beats)})"
    rest = [d for d in depths if d not in tied]
    if len(tied) == 1:
        behind = [d for d in rest if d not in beats.get(tied[0], [])]
        return f"depth {tied[0]} leads but is not shown better than {depths_phrase(behind)} ({_relations(beats)})"
    if all(set(rest) <= set(beats.get(t, [])) for t in tied):
        return f"{depths_phrase(tied)} tie for first"
    return f"no depth wins: {depths_phrase(tied)} are unbeaten ({_relations(beats)})"


def _rule(alpha: float, gamma: float, looks: int, n_pairs: int) -> str:
    level = f"{alpha * 100:.3g}%"
    correction = f"Holm's correction over the {n_pairs} pair{'' if n_pairs == 1 else 's'}"
    if looks > 1:
        correction += f" and a Bonferroni split over {looks} looks"
    return (
        f"Depth A is better than depth B when an exact two-sided permutation test of P(a run of A has the lower test "
        f"loss than a run of B) is significant at the {level} level after {correction}, and that probability is at "
        f"least {gamma:g} (Bouthillier et al. 2021; unpaired runs, a failed run counting as the worst loss). "
        "The winner is the depth better than every other; the depths no other is shown better than tie for first."
    )


def compare(
    losses_by_depth: Mapping[int, Sequence[float]],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float = 0.75,
    looks: int = 1,
) -> Verdict:
    """Compares every pair of depths by their retrained test losses and names a winner, the top group, or neither.

    For each pair a < b: an exact two-sided permutation test of P(a beats b) (the Mann-Whitney statistic, unpaired,
    so the depths may have different numbers of runs), Holm-adjusted over all pairs at level alpha = 1 - confidence.
    The pair is called for the depth with the lower losses when the adjusted p-value is below alpha and that depth
    beats the other with probability at least ``gamma``. NaN and infinite losses are failed runs, ranked worst.

    ``looks``: when seeds are added in rounds and compare() is called after each, pass the most rounds planned; each
    call then tests at alpha / looks, so by the union bound a false call over all rounds stays below alpha.
    The test is exact up to about 50 + 50 runs; beyond, its p-value comes from 9,999 random splits drawn from
    ``seed``, so the same inputs and seed always give the same verdict.

    A single depth is the winner by default. If no depth is unbeaten (a cycle of calls, possible only with a low
    ``gamma``), every depth is in ``tied``. Raises ValueError on no depths, an empty loss list, a depth given twice,
    non-numeric losses, confidence outside (0, 1), gamma outside [0.5, 1), looks below 1 or a non-integer seed.
    """
    alpha = _check_confidence(confidence)
    looks = _check_looks(looks)
    if not 0.5 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0.5, 1), got {gamma}")
    samples = _samples(losses_by_depth)
    depths = sorted(samples)
    counts = [samples[d].size for d in depths]
    index = [(a, b) for i, a in enumerate(depths) for b in depths[i + 1 :]]

    if isinstance(seed, bool) or int(seed) != seed:
        raise ValueError(f"seed must be an integer, got {seed}")
    tests, adjusted, decidable = _test_pairs(samples, index, seed=int(seed), looks=looks, alpha=alpha)
    pairs, beats = _call_pairs(
        samples, index, tests, adjusted, decidable, alpha=alpha, gamma=gamma, confidence=confidence
    )
    winner, tied, undecided = _standing(depths, beats, pairs)
    needed = min_seeds(len(depths), confidence=confidence, looks=looks) if undecided else None
    return Verdict(
        winner=winner,
        tied=tied,
        undecided=undecided,
        pairs=pairs,
        rule=_rule(alpha, gamma, looks, len(index)),
        needed_seeds=needed,
        summary=_summary(depths, winner, tied, beats, needed, counts),
    )


def _samples(losses_by_depth: Mapping[int, Sequence[float]]) -> dict[int, np.ndarray]:
    """Each depth's losses as an array, NaN and infinite (failed) runs set to +inf; raises ValueError on bad input."""
    if not losses_by_depth:
        raise ValueError("no depths to compare")
    samples: dict[int, np.ndarray] = {}
    for depth, values in losses_by_depth.items():
        try:
            d = operator.index(depth)
        except TypeError:
            raise ValueError(f"depths must be integers, got {depth!r}") from None
        if d in samples:
            raise ValueError(f"depth {d} appears twice")
        x = _losses(values, f"losses of depth {d}")
        samples[d] = np.where(np.isfinite(x), x, math.inf)
    return samples


def _test_pairs(
    samples: dict[int, np.ndarray], index: list[tuple[int, int]], *, seed: int, looks: int, alpha: float
) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """Runs the permutation test on every pair: the (AUC, raw p) per pair, Holm-adjusted p-values, and decidability."""
    tests = [
        _rank_test(samples[a], samples[b], np.random.default_rng([seed % 2**64, i])) for i, (a, b) in enumerate(index)
    ]
    raw = np.array([p for _, p in tests])
    adjusted = np.minimum(1.0, looks * _holm(raw)) if index else raw
    # Holm's adjusted p-values only grow with the raw ones, so every pair at its smallest attainable p-value at once
    # (depths completely separated, in any order) is the best case for each: a pair undecidable there never decides.
    floor = np.array([_smallest_p(samples[a].size, samples[b].size) for a, b in index])
    decidable = looks * _holm(floor) < alpha if index else np.zeros(0, dtype=bool)
    return tests, adjusted, decidable


def _call_pairs(
    samples: dict[int, np.ndarray],
    index: list[tuple[int, int]],
    tests: list[tuple[float, float]],
    adjusted: np.ndarray,
    decidable: np.ndarray,
    *,
    alpha: float,
    gamma: float,
    confidence: float,
) -> tuple[list[Pair], dict[int, list[int]]]:
    """Calls each pair for the depth with the lower losses when its adjusted p-value is below alpha and that depth
    wins with probability at least gamma; returns the Pair records and, for each depth, the depths it beats."""
    pairs: list[Pair] = []
    beats: dict[int, list[int]] = {d: [] for d in sorted(samples)}
    for (a, b), (auc, p), p_adj, can in zip(index, tests, adjusted, decidable, strict=True):
        better: int | None = None
        if p_adj < alpha and max(auc, 1.0 - auc) >= gamma:
            better = a if auc > 0.5 else b
            beats[better].append(b if better == a else a)
        pairs.append(_pair(a, b, samples[a], samples[b], better, auc, p, p_adj, can, confidence))
    return pairs, beats


def _pair(
    a: int,
    b: int,
    x: np.ndarray,
    y: np.ndarray,
    better: int | None,
    auc: float,
    p: float,
    p_adj: float,
    can: bool,
    confidence: float,
) -> Pair:
    """The Pair record for depths a < b, with the Welch difference of means when neither has a failed run."""
    diff: float | None = None
    diff_ci: Interval | None = None
    if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
        diff, ci = _welch(x, y, confidence)
        diff_ci = ci if x.size > 1 and y.size > 1 else None
    return Pair(
        a=a,
        b=b,
        better=better,
        p_a_better=auc,
        p_value=float(p),
        p_adjusted=float(p_adj),
        difference=diff,
        difference_ci=diff_ci,
        n_a=int(x.size),
        n_b=int(y.size),
        decidable=bool(can),
    )


def _standing(depths: list[int], beats: dict[int, list[int]], pairs: list[Pair]) -> tuple[int | None, list[int], bool]:
    """The winner (better than every other depth, or None), the tied top group, and whether more seeds could decide."""
    beaten = {d for losers in beats.values() for d in losers}
    winner = next((d for d in depths if len(beats[d]) == len(depths) - 1), None)
    tied = [winner] if winner is not None else ([d for d in depths if d not in beaten] or list(depths))
    undecided = winner is None and any(not pair.decidable and (pair.a in tied or pair.b in tied) for pair in pairs)
    return winner, tied, undecided
