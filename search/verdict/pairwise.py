"""The pairwise test behind the verdict: Brunner and Munzel's test of P(a run of A beats a run of B) = 1/2.

Unlike the Mann-Whitney test it does not assume the two depths' losses have the same spread or shape. The p-value
comes from the studentized permutation distribution (Neubert & Brunner 2007) of the logit of the estimate (Pauly,
Asendorf & Konietschke 2016): exact over every split up to 20,000 splits, else from 9,999 seeded random splits.
Only ranks enter, so any finite loss scale gives the same answer; infinite losses (failed runs) rank worst.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special as _special

from .intervals import Interval

# The fewest runs a depth needs before it can be called better or worse than another. With 5 runs of a depth whose
# losses spread 3-5 times wider than the other's, all 5 fall on one side of it in 1 search in 16 even when neither
# is better, so no test of P(A beats B) = 1/2 that acts on that evidence keeps a 5% level; at 6 runs that chance is
# 1 in 32, and the test's false calls stay under 5% (benchmarks/verdict.py). Against a depth with at least twice as
# many runs, the few-run depth needs one more (6 against 20, the 6 three times wider: 7% false calls; 7: 3%).
MIN_RUNS = 6
MIN_RUNS_UNBALANCED = 7


def _enough_runs(n_a: int, n_b: int) -> bool:
    """Whether a pair with these run counts can be called at all (see MIN_RUNS)."""
    few, many = min(n_a, n_b), max(n_a, n_b)
    return few >= (MIN_RUNS_UNBALANCED if many >= 2 * few else MIN_RUNS)


# Exact permutation distributions up to this many splits, else seeded random splits.
_EXACT_SPLITS = 20_000
_RESAMPLES = 9_999


@dataclass(frozen=True)
class _Test:
    """One pair's Brunner-Munzel test: P(x beats y), its interval, and the one-sided p-values of each direction."""

    auc: float
    ci: Interval
    p_x_better: float  # one-sided: x beats y
    p_y_better: float

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2.0 * min(self.p_x_better, self.p_y_better))


@functools.lru_cache(maxsize=64)
def _exact_splits(n: int, k: int) -> np.ndarray:
    """Every way of choosing which k of n pooled runs form the first group, as a (splits, n) 0/1 matrix."""
    first = np.array(list(itertools.combinations(range(n), k)), dtype=np.intp)
    masks = np.zeros((first.shape[0], n))
    np.put_along_axis(masks, first, 1.0, axis=1)
    masks.flags.writeable = False
    return masks


def _is_exact(n_x: int, n_y: int) -> bool:
    return math.comb(n_x + n_y, n_x) <= _EXACT_SPLITS


def _splits(n_x: int, n_y: int, rng: np.random.Generator) -> np.ndarray:
    """The splits of the pooled runs the permutation distribution is taken over: all of them, or seeded random ones
    (rows of a 0/1 matrix, 1 for the first group)."""
    n = n_x + n_y
    if _is_exact(n_x, n_y):
        return _exact_splits(n, n_x)
    order = np.argsort(rng.random((_RESAMPLES, n)), axis=1)
    return (order < n_x).astype(float)


def _studentized(below: np.ndarray, masks: np.ndarray, n_x: int, n_y: int) -> tuple[np.ndarray, ...]:
    """For each split (a row of ``masks``, 1 for the first group): P(first beats rest), the logit statistic and the
    standard error of the logit. ``below[i, j]`` is 1 when run j's loss lies below run i's, 1/2 on a tie, 0 on the
    diagonal.

    The placements (how many of the other group lie below each run) give Brunner and Munzel's variance of the
    estimate; the delta method carries it to the logit scale. The estimate is kept off 0 and 1 by half a pair and
    the variance off 0 by the variance of one pair, so that a complete separation is a large finite statistic.
    """
    rest = 1.0 - masks
    # [split, i]: runs of the second group below run i (einsum, not BLAS: small products, no thread start-up)
    under_rest = np.einsum("sj,ij->si", rest, below)
    under_first = below.sum(axis=1) - under_rest  # runs of the first group below run i (i's own diagonal is 0)

    def moments(values: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        mean = (values * weights).sum(axis=1) / n
        var = ((values - mean[:, None]) ** 2 * weights).sum(axis=1) / (n - 1)
        return mean, var

    mean_x, var_x = moments(under_rest, masks, n_x)
    mean_y, var_y = moments(under_first, rest, n_y)
    auc = mean_y / n_x
    var = var_x / (n_x * n_y**2) + var_y / (n_y * n_x**2)
    var = np.maximum(var, 1.0 / (4.0 * n_x * n_y) ** 2)
    edge = 0.5 / (n_x * n_y)
    p = np.clip(auc, edge, 1.0 - edge)
    se_logit = np.sqrt(var) / (p * (1.0 - p))
    return auc, np.log(p / (1.0 - p)) / se_logit, se_logit


def _brunner_munzel(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, confidence: float) -> _Test:
    """The studentized permutation Brunner-Munzel test of P(x beats y) = 1/2 (lower wins; inf is the worst)."""
    pooled = np.concatenate([x, y])
    below = (pooled[None, :] < pooled[:, None]) + 0.5 * (pooled[None, :] == pooled[:, None])
    np.fill_diagonal(below, 0.0)
    n_x, n_y = x.size, y.size
    observed = np.concatenate([np.ones(n_x), np.zeros(n_y)])[None, :]
    auc, stat, se_logit = (float(v[0]) for v in _studentized(below, observed, n_x, n_y))
    _, null, _ = _studentized(below, _splits(n_x, n_y, rng), n_x, n_y)
    tol = 1e-9 * max(1.0, abs(stat))
    at_least, at_most = np.count_nonzero(null >= stat - tol), np.count_nonzero(null <= stat + tol)
    if _is_exact(n_x, n_y):
        p_greater, p_less = at_least / null.size, at_most / null.size
    else:  # a random draw counts the observed split once (as scipy's permutation_test)
        p_greater, p_less = (at_least + 1) / (null.size + 1), (at_most + 1) / (null.size + 1)
    # The interval inverts the same statistic: the permutation distribution stands in for its sampling distribution.
    alpha = 1.0 - confidence
    lo_q, hi_q = np.quantile(null, [alpha / 2.0, 1.0 - alpha / 2.0])
    edge = 0.5 / (n_x * n_y)
    p = min(max(auc, edge), 1.0 - edge)
    centre = math.log(p / (1.0 - p))
    low, high = float(_special.expit(centre - hi_q * se_logit)), float(_special.expit(centre - lo_q * se_logit))
    # The estimate was kept off 0 and 1 for the logit: an estimate at either end stays inside its own interval.
    ci = Interval(min(low, auc), max(high, auc), "brunner-munzel")
    return _Test(auc=auc, ci=ci, p_x_better=float(p_greater), p_y_better=float(p_less))


def _smallest_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided p-value the test can give with these run counts (complete separation); 1 below
    MIN_RUNS, where no call is made."""
    if not _enough_runs(n_a, n_b):
        return 1.0
    if not _is_exact(n_a, n_b):
        return 1.0 / (_RESAMPLES + 1)
    return 1.0 / math.comb(n_a + n_b, n_a)
