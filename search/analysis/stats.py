"""Comparing depths with uncertainty: bootstrap intervals, P(A beats B), expected best versus budget.

Losses are "lower is better" throughout. The verdict follows Bouthillier et al. 2021
("Accounting for variance in machine learning benchmarks"): depth A is better than B only
when P(A beats B) >= a threshold (0.75) and the lower end of its bootstrap interval is above 0.5.
The budget curves follow Dodge et al. 2019 ("Show your work"): the expected best of n trials,
computed exactly from the empirical distribution of the observed trials.

All bootstrap intervals are percentile intervals drawn with ``numpy.random.default_rng(seed)``,
so the same inputs and seed always give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "Interval",
    "Pair",
    "Verdict",
    "mean_ci",
    "difference_ci",
    "prob_better",
    "compare",
    "expected_best",
    "expected_best_std",
]

# Upper bound on the entries of one block of bootstrap counts, to keep memory flat for long arrays.
_BLOCK_ENTRIES = 2_000_000


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
    """Depth ``a`` against depth ``b`` (a < b): mean-loss difference a - b and P(a has the lower loss)."""

    a: int
    b: int
    difference: float
    difference_ci: Interval
    p_a_better: float
    p_a_better_ci: Interval
    better: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; intervals as ``[low, high]``."""
        return {
            "a": int(self.a),
            "b": int(self.b),
            "difference": float(self.difference),
            "difference_ci": self.difference_ci.as_list(),
            "p_a_better": float(self.p_a_better),
            "p_a_better_ci": self.p_a_better_ci.as_list(),
            "better": None if self.better is None else int(self.better),
        }


@dataclass(frozen=True)
class Verdict:
    """The winning depth (None on a tie), the depths tied for first, every pairwise comparison, the rule used."""

    winner: int | None
    tied: list[int] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``json.dumps`` works); intervals as ``[low, high]``."""
        return {
            "winner": None if self.winner is None else int(self.winner),
            "tied": [int(d) for d in self.tied],
            "pairs": [p.to_dict() for p in self.pairs],
            "rule": self.rule,
        }


# ----------------------------------------------------------------------------- helpers


def _sample(values: Sequence[float], name: str = "values") -> np.ndarray:
    """A non-empty, finite, one-dimensional float array, or ValueError."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_options(confidence: float, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot}")


def _percentile(stats: np.ndarray, confidence: float) -> Interval:
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(low), float(high))


def _counts(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``m`` bootstrap resamples of ``n`` items, as an (m, n) array of how often each item was drawn."""
    idx = rng.integers(0, n, size=(m, n))
    idx += (np.arange(m) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(float)


def _blocks(n_boot: int, width: int) -> Iterator[int]:
    """Sizes of the blocks that make up ``n_boot`` resamples of ``width`` entries each."""
    step = max(1, _BLOCK_ENTRIES // max(width, 1))
    done = 0
    while done < n_boot:
        m = min(step, n_boot - done)
        yield m
        done += m


def _win_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where a < b, 1/2 where a == b, 0 where a > b (elementwise, broadcasting)."""
    return (a < b).astype(float) + 0.5 * (a == b)


def _pair_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_boot: int, seed: int, paired: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of (mean(a) - mean(b), P(a beats b)), from the same resamples."""
    rng = np.random.default_rng(seed)
    diffs: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    if paired:
        n = a.size
        d = a - b
        s = _win_score(a, b)
        for m in _blocks(n_boot, n):
            c = _counts(rng, n, m)
            diffs.append(c @ d / n)
            probs.append(c @ s / n)
    else:
        na, nb = a.size, b.size
        wins = _win_score(a[:, None], b[None, :])  # (na, nb)
        for m in _blocks(n_boot, na + 2 * nb):
            ca = _counts(rng, na, m)
            cb = _counts(rng, nb, m)
            diffs.append(ca @ a / na - cb @ b / nb)
            probs.append(np.einsum("ij,ij->i", ca @ wins, cb) / (na * nb))
    return np.concatenate(diffs), np.concatenate(probs)


def _pair_inputs(a: Sequence[float], b: Sequence[float], paired: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = _sample(a, "a"), _sample(b, "b")
    if paired and x.size != y.size:
        raise ValueError(f"paired comparison needs equal lengths, got {x.size} and {y.size}")
    return x, y


def _point_prob(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    if paired:
        return float(_win_score(a, b).mean())
    return float(_win_score(a[:, None], b[None, :]).mean())


# ----------------------------------------------------------------------------- intervals


def mean_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, Interval]:
    """The mean and a percentile-bootstrap interval of it; a single value gives ``[v, v]``.

    Raises ValueError on empty input or NaN/inf values.
    """
    _check_options(confidence, n_boot)
    x = _sample(values)
    mean = float(x.mean())
    if x.size == 1:
        return mean, Interval(mean, mean)
    rng = np.random.default_rng(seed)
    n = x.size
    stats = np.concatenate([_counts(rng, n, m) @ x / n for m in _blocks(n_boot, n)])
    return mean, _percentile(stats, confidence)


def difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    paired: bool = False,
) -> tuple[float, Interval]:
    """``mean(a) - mean(b)`` and a percentile-bootstrap interval of it.

    ``paired=True`` (a[i], b[i] share seed i; lengths must match) resamples indices jointly;
    otherwise each sample is resampled on its own.
    """
    _check_options(confidence, n_boot)
    x, y = _pair_inputs(a, b, paired)
    diffs, _ = _pair_bootstrap(x, y, n_boot=n_boot, seed=seed, paired=paired)
    return float(x.mean() - y.mean()), _percentile(diffs, confidence)


def prob_better(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    paired: bool = False,
) -> tuple[float, Interval]:
    """P(A beats B), beating meaning a LOWER loss (ties count 1/2), with a percentile-bootstrap interval.

    Unpaired: the share of all (a, b) pairs with a < b (the Mann-Whitney AUC). Paired: the share of i
    with a[i] < b[i]. Uses the same resamples as ``difference_ci`` for the same seed.
    """
    _check_options(confidence, n_boot)
    x, y = _pair_inputs(a, b, paired)
    _, probs = _pair_bootstrap(x, y, n_boot=n_boot, seed=seed, paired=paired)
    return _point_prob(x, y, paired), _percentile(probs, confidence)


# ----------------------------------------------------------------------------- verdict


def _rule(confidence: float, threshold: float, paired: bool) -> str:
    level = f"{confidence * 100:g}%"
    pairing = (
        "pairing runs by seed where two depths have the same number of runs and unpaired otherwise"
        if paired
        else "unpaired"
    )
    return (
        f"Depth A is better than depth B when P(A has the lower test loss) >= {threshold:g} and the lower "
        f"end of its {level} percentile-bootstrap interval is above 0.5 ({pairing}; Bouthillier et al. 2021); "
        "the winner is the depth better than every other depth, otherwise the depths beaten by none tie for first."
    )


def compare(
    losses: dict[int, Sequence[float]],
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
    paired: bool = True,
    threshold: float = 0.75,
) -> Verdict:
    """Compares every pair of depths by their retrained test losses and names a winner or a tie.

    For each pair a < b: ``difference`` is mean(a) - mean(b) (negative: a has the lower loss) and
    ``p_a_better`` is P(a beats b). a is better when p >= threshold and its interval's low end > 0.5;
    b is better when 1 - p >= threshold and 1 - high > 0.5; otherwise the pair ties.
    ``paired=True`` pairs runs by seed index, falling back to unpaired for a pair whose lengths differ.
    A depth with a single value is still compared: its intervals collapse onto the point estimates,
    so one run against one run is decided by which loss is lower. A single depth is the winner.
    If every depth is beaten by some other (P(A beats B) need not be transitive), all depths tie.
    Raises ValueError on no depths, an empty or non-finite loss array, or a threshold outside [0.5, 1].
    """
    _check_options(confidence, n_boot)
    if not 0.5 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0.5, 1], got {threshold}")
    if not losses:
        raise ValueError("no depths to compare")
    samples: dict[int, np.ndarray] = {}
    for depth, values in losses.items():
        d = int(depth)
        if d in samples:
            raise ValueError(f"depth {d} appears twice")
        samples[d] = _sample(values, f"losses of depth {d}")
    depths = sorted(samples)

    pairs: list[Pair] = []
    beaten: set[int] = set()
    wins: dict[int, int] = {d: 0 for d in depths}
    for i, da in enumerate(depths):
        for db in depths[i + 1 :]:
            x, y = samples[da], samples[db]
            pair_paired = paired and x.size == y.size
            diffs, probs = _pair_bootstrap(x, y, n_boot=n_boot, seed=seed, paired=pair_paired)
            p = _point_prob(x, y, pair_paired)
            p_ci = _percentile(probs, confidence)
            better: int | None = None
            if p >= threshold and p_ci.low > 0.5:
                better = da
            elif 1.0 - p >= threshold and 1.0 - p_ci.high > 0.5:
                better = db
            if better is not None:
                loser = db if better == da else da
                beaten.add(loser)
                wins[better] += 1
            pairs.append(
                Pair(
                    a=da,
                    b=db,
                    difference=float(x.mean() - y.mean()),
                    difference_ci=_percentile(diffs, confidence),
                    p_a_better=p,
                    p_a_better_ci=p_ci,
                    better=better,
                )
            )

    winner = next((d for d in depths if wins[d] == len(depths) - 1), None)
    if winner is not None:
        tied = [winner]
    else:
        tied = [d for d in depths if d not in beaten] or list(depths)
    return Verdict(winner=winner, tied=tied, pairs=pairs, rule=_rule(confidence, threshold, paired))


# ----------------------------------------------------------------------------- expected best versus budget


def _min_distribution(values: Sequence[float], n_max: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite values and P(min of n draws = v_(i)) as an (n_max, N) array (rows n = 1..n_max)."""
    x = np.asarray(values, dtype=float).ravel()
    x = np.sort(x[np.isfinite(x)])
    big_n = x.size
    if n_max is None:
        n_max = big_n
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"n_max must be a non-negative integer, got {n_max}")
    n_max = int(n_max)
    if big_n == 0 or n_max == 0:
        return x, np.zeros((0, big_n))
    n = np.arange(1, n_max + 1, dtype=float)[:, None]
    share = np.arange(big_n, -1, -1, dtype=float)[None, :] / big_n  # (N - i + 1) / N for i = 1..N+1
    powers = share**n  # P(every draw is v_(i) or above)
    return x, powers[:, :-1] - powers[:, 1:]


def expected_best(values: Sequence[float], *, n_max: int | None = None) -> list[float]:
    """Expected lowest loss among n trials drawn with replacement from the observed ones, n = 1..n_max.

    Exact (Dodge et al. 2019); NaN/inf values are dropped, ``n_max`` defaults to their count; empty -> [].
    """
    x, probs = _min_distribution(values, n_max)
    return [float(v) for v in probs @ x]


def expected_best_std(values: Sequence[float], *, n_max: int | None = None) -> list[float]:
    """Standard deviation of that lowest loss, n = 1..n_max (same exact distribution), for a shaded band."""
    x, probs = _min_distribution(values, n_max)
    if probs.shape[0] == 0:
        return []
    mean = probs @ x
    var = np.einsum("ki,ki->k", probs, (x[None, :] - mean[:, None]) ** 2)
    return [float(v) for v in np.sqrt(np.maximum(var, 0.0))]
