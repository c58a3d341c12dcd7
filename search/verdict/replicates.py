"""The verdict's unit when a depth was searched several times: the replicate search.

Two searches of the same depth with different sampler seeds find different configurations, so a depth's runs are
clustered by the search that found their configuration: seeds of one search vary less than seeds of two. Treating
every run as independent would count one lucky search's seeds as evidence about the depth. Here each replicate
search is one observation, the mean test loss of its configuration over the seeds, and two depths are compared on
those means:

- the measure is P(a search of depth A ends with a lower mean test loss than a search of depth B), ties counting 1/2;
- the test of no difference is Welch's t test on the replicate means (on the log scale where every loss is positive,
  so a loss's scale and its skew matter less), which allows each depth its own spread between searches and needs
  no more than two searches a side to say anything;
- a search with a failed retraining has an infinite mean: such pairs are left to the rank test, which with a few
  searches cannot call them, so a depth never looks better by failing.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy import special as _special

from .intervals import Interval, _scale, _t_interval
from .pairwise import _brunner_munzel, _Test

MIN_REPLICATES = 2  # searches a side before a pair can be called on replicate means


def replicate_means(values: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """The mean loss of each replicate search (in the order of their numbers); infinite where a run failed."""
    groups = np.asarray(list(groups))
    if groups.shape != values.shape:
        raise ValueError(f"{values.size} losses but {groups.size} replicate numbers")
    return np.array([values[groups == g].mean() for g in np.unique(groups)])


def clustered(groups: Mapping[int, Sequence[int]] | None) -> bool:
    """Whether some depth's runs come from more than one replicate search."""
    return bool(groups) and any(len(set(g)) > 1 for g in groups.values())


def replicate_test(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, confidence: float) -> _Test:
    """Depth x against depth y on their replicate means (lower wins): P(a search of x beats a search of y), its
    interval, and Welch's one-sided p-values of each direction."""
    auc = float(np.mean((x[:, None] < y[None, :]) + 0.5 * (x[:, None] == y[None, :])))
    if min(x.size, y.size) < MIN_REPLICATES:
        return _Test(auc=auc, ci=Interval(0.0, 1.0, "brunner-munzel"), p_x_better=1.0, p_y_better=1.0)
    ci = _brunner_munzel(x, y, rng, confidence).ci
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return _Test(auc=auc, ci=ci, p_x_better=1.0, p_y_better=1.0)
    p_x_better = welch_p(x, y)
    return _Test(auc=auc, ci=ci, p_x_better=p_x_better, p_y_better=welch_p(y, x))


def welch_p(x: np.ndarray, y: np.ndarray) -> float:
    """Welch's one-sided p-value that x's mean lies below y's (on logs where every value is positive)."""
    if np.all(x > 0) and np.all(y > 0):
        a, b = np.log(x), np.log(y)
    else:
        s = _scale(x, y)
        a, b = x / s, y / s
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(b.mean() - a.mean())
    se2 = float(va + vb)
    if se2 == 0.0:
        return 0.0 if diff > 0 else (1.0 if diff < 0 else 0.5)
    dof = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(_special.stdtr(dof, -diff / math.sqrt(se2)))


def mean_interval(means: np.ndarray, confidence: float) -> tuple[float, Interval]:
    """The mean over replicate searches of their mean losses, with its t interval over the searches."""
    if means.size < 2:
        return float(means.mean()), Interval(-math.inf, math.inf, "t-replicates")
    centre, ci = _t_interval(means, confidence)
    return centre, Interval(ci.low, ci.high, "t-replicates")
