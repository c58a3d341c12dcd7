"""Intervals over seeds, at any finite loss scale: a depth's mean test loss and the difference between two depths.

Positive losses (test losses are) get Cox's interval for a log-normal mean, which keeps its coverage for the skewed
losses seeds give where the t interval and the bootstrap do not at a few seeds; other losses get t intervals.
Differences of means get Welch's interval. Values are scaled by a power of two before any sum or square, so
neither 1e300 nor 1e-300 overflows or collapses.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import special as _special

__all__ = ["Interval", "difference_ci", "mean_ci", "mean_interval"]


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high]; ``method`` says how it was made ("t", "welch", "cox-lognormal", ...)."""

    low: float
    high: float
    method: str = field(default="t", compare=False)

    def as_list(self) -> list[float]:
        """The interval as a plain ``[low, high]`` list."""
        return [float(self.low), float(self.high)]


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


def _scale(*arrays: np.ndarray) -> float:
    """A power of two near the largest magnitude, so that sums and squares neither overflow nor underflow."""
    top = max(float(np.max(np.abs(a))) for a in arrays)
    if top == 0.0 or not math.isfinite(top):
        return 1.0
    return math.ldexp(1.0, math.frexp(top)[1] - 1)  # top / scale lies in [1, 2)


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float, Interval]:
    s = _scale(x)
    y = x / s
    mean = float(y.mean())
    half = float(_special.stdtrit(x.size - 1, 0.5 + confidence / 2.0) * y.std(ddof=1) / math.sqrt(x.size))
    return _unscale(mean, s), Interval(_unscale(mean - half, s), _unscale(mean + half, s), "t")


def _unscale(value: float, s: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.float64(value) * s)


def _cox_interval(x: np.ndarray, confidence: float) -> tuple[float, Interval]:
    """Cox's interval for the mean of log-normal values, with a t quantile (Olsson 2005)."""
    logs = np.log(x)
    n = x.size
    var = float(logs.var(ddof=1))
    centre = float(logs.mean()) + var / 2.0
    half = float(_special.stdtrit(n - 1, 0.5 + confidence / 2.0)) * math.sqrt(var / n + var**2 / (2.0 * (n - 1)))
    mean, _ = _t_interval(x, confidence)
    return mean, Interval(_exp(centre - half), _exp(centre + half), "cox-lognormal")


def _exp(value: float) -> float:
    return math.exp(value) if value < 709.0 else math.inf


def mean_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, Interval]:
    """The mean and its interval: Cox's log-normal interval when every loss is positive, else the t interval.

    Seed-to-seed losses are positive and often right-skewed; there the t interval covers 83% at 8 seeds
    (log-normal, sigma 1) and a BCa bootstrap 81%, while Cox's holds 94%, and it keeps 95% for normal-looking
    positive losses too (benchmarks/verdict.py).

    The interval's ``method`` says which ("cox-lognormal" or "t"). A single value gives ``[v, v]``. Raises ValueError
    on empty input or NaN/inf values (callers leave failed runs out of a mean).
    """
    _check_confidence(confidence)
    x = _sample(values)
    if x.size == 1 or np.ptp(x) == 0.0:
        v = float(x[0]) if x.size == 1 else float(x.mean())
        return v, Interval(v, v, "t")
    if np.all(x > 0.0):
        return _cox_interval(x, confidence)
    return _t_interval(x, confidence)


def mean_ci(values: Sequence[float], *, confidence: float = 0.95, seed: int = 0) -> tuple[float, Interval]:
    """The mean and its interval, as `mean_interval` (``seed`` is accepted for callers and unused)."""
    return mean_interval(values, confidence=confidence)


def _welch(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, Interval]:
    """mean(x) - mean(y) and its Welch interval, equal to scipy's ``ttest_ind(x, y, equal_var=False)`` one, computed
    on values scaled to near 1 so that any finite scale works; parts that do not fit a float are infinite."""
    s = _scale(x, y)
    xs, ys = x / s, y / s
    diff = float(xs.mean() - ys.mean())
    if x.size < 2 or y.size < 2:
        return _unscale(diff, s), Interval(-math.inf, math.inf, "welch")
    vx, vy = xs.var(ddof=1) / x.size, ys.var(ddof=1) / y.size
    se2 = vx + vy
    if se2 == 0.0:
        d = _unscale(diff, s)
        return d, Interval(d, d, "welch")
    df = se2**2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = float(_special.stdtrit(df, 0.5 + confidence / 2.0) * math.sqrt(se2))
    return _unscale(diff, s), Interval(_unscale(diff - half, s), _unscale(diff + half, s), "welch")


def difference_ci(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> tuple[float, Interval]:
    """``mean(a) - mean(b)`` and its Welch t interval (unequal variances, unpaired).

    The same interval as ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)``, at any
    finite scale. With a single value on either side the spread of that side is unknown and the interval is
    ``(-inf, inf)``; with no spread on both sides it is the point. Raises ValueError on empty input or NaN/inf values.
    """
    _check_confidence(confidence)
    return _welch(_sample(a, "a"), _sample(b, "b"), confidence)


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _check_looks(looks: int) -> int:
    if isinstance(looks, bool) or int(looks) != looks or looks < 1:
        raise ValueError(f"looks must be a positive integer, got {looks}")
    return int(looks)


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
