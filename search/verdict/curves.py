"""How a search's best improves with its budget: the expected best of n trials and where two depths' curves cross.

The curves follow Dodge et al. 2019 ("Show your work"): the expected best of n trials, computed exactly from the
empirical distribution of the observed trials.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["curve_crossings", "expected_best", "expected_best_std"]


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


def curve_crossings(
    curves: Mapping[int, tuple[Sequence[float], Sequence[float]]], *, points: int = 200
) -> list[tuple[int, int, float]]:
    """Where two depths' curves (x ascending, y lower is better) swap order, over the x range both cover.

    Returns (a, b, x) for each pair a < b whose difference changes sign, x being the first change (linear
    interpolation on a grid of `points`); pairs that only touch, or share no range, are left out.
    """
    found = []
    depths = sorted(curves)
    for i, a in enumerate(depths):
        for b in depths[i + 1 :]:
            (xa, ya), (xb, yb) = curves[a], curves[b]
            if len(xa) == 0 or len(xb) == 0:
                continue
            low, high = max(xa[0], xb[0]), min(xa[-1], xb[-1])
            if not low < high:
                continue
            grid = np.linspace(low, high, points)
            diff = np.interp(grid, xa, ya) - np.interp(grid, xb, yb)
            where = np.flatnonzero(np.abs(diff) > 1e-12 * max(1.0, float(np.abs(diff).max())))
            signs = np.sign(diff[where])
            changes = np.flatnonzero(signs[1:] != signs[:-1])
            if changes.size:
                found.append((a, b, float(grid[where[changes[0] + 1]])))
    return found
