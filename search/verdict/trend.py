"""Whether adding layers helps: the least-squares change in mean test loss per added layer, with a
Welch-Satterthwaite t interval that allows every depth its own spread between seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special as _special

from .intervals import Interval, _check_confidence, _check_looks, _json_float, _samples, _scale, _unscale


@dataclass(frozen=True)
class Trend:
    """The change in mean test loss per added layer (least squares over the depths' means) with its interval.

    ``p_value`` tests a slope of 0 (two-sided, Welch-Satterthwaite t); ``direction`` is "down" (deeper is better) or
    "up" (deeper is worse) when the slope is significant at the verdict's level, else None. ``summary`` says it in
    words without a capital or a full stop.
    """

    slope: float
    ci: Interval
    p_value: float
    direction: str | None
    depths: list[int]
    failed_left_out: int = 0
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "slope": _json_float(self.slope),
            "ci": self.ci.as_list() if all(map(math.isfinite, self.ci.as_list())) else None,
            "p_value": float(self.p_value),
            "direction": self.direction,
            "depths": [int(d) for d in self.depths],
            "failed_left_out": int(self.failed_left_out),
            "summary": self.summary,
        }


def trend(losses_by_depth: Mapping[int, Sequence[float]], *, confidence: float = 0.95, looks: int = 1) -> Trend | None:
    """The change in mean test loss per added layer, its interval and the test of no change; None when fewer than
    three depths have at least two finite losses each.

    The slope is the least-squares line through the depths' mean losses (each depth weighted alike); its variance
    adds each depth's own variance of the mean, with Welch-Satterthwaite degrees of freedom, so depths that vary
    more between seeds are allowed for. Failed runs are left out (and counted).
    """
    alpha = _check_confidence(confidence) / _check_looks(looks)
    samples = _samples(losses_by_depth)
    finite = {d: x[np.isfinite(x)] for d, x in samples.items()}
    failed = sum(int(np.count_nonzero(~np.isfinite(x))) for x in samples.values())
    used = sorted(d for d, x in finite.items() if x.size >= 2)
    if len(used) < 3:
        return None
    s = _scale(*(finite[d] for d in used))
    depth_arr = np.array(used, dtype=float)
    weights = (depth_arr - depth_arr.mean()) / float(((depth_arr - depth_arr.mean()) ** 2).sum())
    means = np.array([finite[d].mean() / s for d in used])
    var_means = np.array([(finite[d] / s).var(ddof=1) / finite[d].size for d in used])
    slope = float(weights @ means)
    parts = weights**2 * var_means
    se2 = float(parts.sum())
    if se2 == 0.0:
        p_value = 0.0 if slope != 0.0 else 1.0
        ci = Interval(_unscale(slope, s), _unscale(slope, s), "welch")
    else:
        dof = se2**2 / float(sum(p**2 / (finite[d].size - 1) for p, d in zip(parts, used, strict=True)))
        se = math.sqrt(se2)
        p_value = float(2.0 * _special.stdtr(dof, -abs(slope) / se))
        half = float(_special.stdtrit(dof, 1.0 - (1.0 - confidence) / 2.0)) * se
        ci = Interval(_unscale(slope - half, s), _unscale(slope + half, s), "welch")
    direction = None
    if p_value < alpha and slope != 0.0:
        direction = "down" if slope < 0 else "up"
    value = _unscale(slope, s)
    return Trend(
        slope=value,
        ci=ci,
        p_value=p_value,
        direction=direction,
        depths=used,
        failed_left_out=failed,
        summary=_trend_summary(value, ci, direction, used, confidence),
    )


def _trend_summary(slope: float, ci: Interval, direction: str | None, depths: list[int], confidence: float) -> str:
    level = f"{confidence * 100:g}%"
    span = f"[{ci.low:.3g}, {ci.high:.3g}]"
    change = f"{slope:+.3g} per added layer ({level} CI {span})"
    between = f"from depth {depths[0]} to {depths[-1]}"
    if direction == "down":
        return f"adding layers lowers the test loss {between}: {change}"
    if direction == "up":
        return f"adding layers raises the test loss {between}: {change}"
    return f"no trend with depth is shown {between}: {change}"
