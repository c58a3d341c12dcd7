"""Tuned against one fixed setting, as tested statements: how much tuning changed each depth, whether the fixed
setting would have led to another conclusion, and whether it loses to the naive forecast where tuning does not.

Pure functions over loss lists and the two verdicts (numpy and scipy only).

`conclusion_changed` is True only when the data show it, False only when equivalence is shown, and None otherwise:

- True when a pair of depths is called one way tuned and the other way with the fixed setting; or when the
  difference between two depths changes sign from one setting to the other and that change (the interaction:
  tuned difference minus fixed difference) is significant, Holm-adjusted over the pairs; or when the fixed setting
  loses to the naive forecast at every depth while some tuned depth beats it, or the other way round.
- False when every pair's interaction lies within +-margin by two one-sided tests (TOST, an intersection-union test,
  so no correction is needed) and nothing above holds: the comparison between depths is the same within the margin.
- None otherwise ("cannot tell yet"), with the number of seeds per configuration that would settle it if the
  estimates held.

Under tuned and fixed losses from the same distributions, True comes out in at most 1 - confidence of searches
(benchmarks/verdict.py measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special as _special

from . import stats
from .wording import depths_phrase

__all__ = ["DEFAULT_MARGIN", "Gain", "SettingsComparison", "compare_settings"]

# The equivalence margin, as a share of the tuned depths' lowest mean test loss: two comparisons between depths
# count as the same when no difference between two depths moves by more than this.
DEFAULT_MARGIN = 0.1

# Seed counts above this are reported as "more than" it: the estimates would have to hold over that many runs.
_MOST_SEEDS = 1000


@dataclass(frozen=True)
class Gain:
    """How much tuning lowered one depth's mean test loss: the fixed setting's mean minus the tuned one's, with its
    Welch interval (None where either side has fewer than two finite losses)."""

    depth: int
    gain: float | None
    ci: stats.Interval | None

    def to_dict(self) -> dict[str, Any]:
        finite = self.ci is not None and all(math.isfinite(v) for v in self.ci.as_list())
        return {
            "depth": int(self.depth),
            "gain": None if self.gain is None or not math.isfinite(self.gain) else float(self.gain),
            "ci": self.ci.as_list() if finite else None,
        }


@dataclass(frozen=True)
class SettingsComparison:
    """The tested tuned-versus-fixed statement: ``changed`` (True, False or None) and the reasons behind it."""

    changed: bool | None
    reasons: list[str]
    gains: list[Gain]
    margin: float | None  # in loss units
    margin_share: float
    fixed_loses_to_naive: bool | None
    tuned_beats_naive: bool | None
    needed_seeds: int | None
    interactions: list[dict[str, Any]] = field(default_factory=list)
    sentence: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "changed": self.changed,
            "reasons": list(self.reasons),
            "gains": [g.to_dict() for g in self.gains],
            "margin": None if self.margin is None or not math.isfinite(self.margin) else float(self.margin),
            "margin_share": float(self.margin_share),
            "fixed_loses_to_naive": self.fixed_loses_to_naive,
            "tuned_beats_naive": self.tuned_beats_naive,
            "needed_seeds": self.needed_seeds,
            "interactions": self.interactions,
            "sentence": self.sentence,
        }


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _gains(tuned: Mapping[int, np.ndarray], fixed: Mapping[int, np.ndarray], confidence: float) -> list[Gain]:
    gains = []
    for depth in sorted(set(tuned) & set(fixed)):
        t, f = _finite(tuned[depth]), _finite(fixed[depth])
        if t.size < 2 or f.size < 2:
            gains.append(Gain(depth, None, None))
            continue
        diff, ci = stats.difference_ci(f, t, confidence=confidence)
        gains.append(Gain(depth, diff, ci))
    return gains


def _side_of_naive(values: np.ndarray, naive: float, alpha: float) -> str | None:
    """ "above" or "below" when the mean's interval at level 1 - alpha lies wholly on that side of the naive loss.
    Every run failed: "above" (a failed run is the worst loss)."""
    finite = _finite(values)
    if finite.size < values.size:
        # Failed runs count as the worst loss: every run above the naive loss, by a sign test.
        return "above" if (finite.size == 0 or finite.min() > naive) and 0.5**values.size < alpha else None
    if finite.size < 2:
        return None
    _, ci = stats.mean_interval(finite, confidence=1.0 - alpha)
    if ci.low > naive:
        return "above"
    if ci.high < naive:
        return "below"
    return None


def _naive(
    tuned: Mapping[int, np.ndarray], fixed: Mapping[int, np.ndarray], naive: float | None, alpha: float
) -> tuple[bool | None, bool | None, bool | None, bool | None]:
    """(fixed loses at every depth, some tuned depth beats it, tuned loses at every depth, some fixed depth beats
    it). "Every depth" is an intersection-union test at alpha; "some depth" is Bonferroni over the depths."""
    if naive is None or not math.isfinite(naive):
        return None, None, None, None
    depths = sorted(set(tuned) & set(fixed))
    if not depths:
        return None, None, None, None
    k = len(depths)
    fixed_every = all(_side_of_naive(fixed[d], naive, alpha) == "above" for d in depths)
    tuned_every = all(_side_of_naive(tuned[d], naive, alpha) == "above" for d in depths)
    tuned_some = any(_side_of_naive(tuned[d], naive, alpha / k) == "below" for d in depths)
    fixed_some = any(_side_of_naive(fixed[d], naive, alpha / k) == "below" for d in depths)
    return fixed_every, tuned_some, tuned_every, fixed_some


def _interaction(t_a, t_b, f_a, f_b) -> tuple[float, float, float] | None:
    """(tuned a - b) - (fixed a - b), its standard error and Welch-Satterthwaite degrees of freedom; None when a
    group has fewer than two finite losses or a failed run."""
    groups = [t_a, t_b, f_a, f_b]
    if any(g.size < 2 or not np.all(np.isfinite(g)) for g in groups):
        return None
    scale = max(float(np.max(np.abs(g))) for g in groups) or 1.0
    scaled = [g / scale for g in groups]
    estimate = (scaled[0].mean() - scaled[1].mean()) - (scaled[2].mean() - scaled[3].mean())
    parts = [g.var(ddof=1) / g.size for g in scaled]
    se2 = float(sum(parts))
    if se2 == 0.0:
        return float(estimate) * scale, 0.0, math.inf
    dof = se2**2 / sum(p**2 / (g.size - 1) for p, g in zip(parts, scaled, strict=True))
    return float(estimate) * scale, math.sqrt(se2) * scale, float(dof)


def _seeds_for(n: int, se: float, distance: float, quantile: float) -> int:
    """Seeds per configuration at which ``quantile`` standard errors fit in ``distance``, if the spread held."""
    if distance <= 0.0:
        return _MOST_SEEDS + 1
    if se == 0.0:
        return n
    return min(_MOST_SEEDS + 1, max(n + 1, math.ceil(n * (quantile * se / distance) ** 2)))


def compare_settings(
    tuned: Mapping[int, Sequence[float]],
    fixed: Mapping[int, Sequence[float]],
    *,
    tuned_verdict: stats.Verdict,
    fixed_verdict: stats.Verdict,
    naive_loss: float | None = None,
    confidence: float = 0.95,
    margin: float = DEFAULT_MARGIN,
    looks: int = 1,
) -> SettingsComparison:
    """Whether one fixed setting would have led to another conclusion than tuning each depth, as a tested statement.

    ``tuned`` and ``fixed`` map each depth to its test losses (NaN/inf: failed runs); the verdicts are theirs from
    `stats.compare`. ``naive_loss`` is the best naive forecast's test loss (None without one). ``margin`` is the
    equivalence margin as a share of the lowest tuned mean test loss. Raises ValueError on a confidence outside (0, 1)
    or a negative margin.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if not margin >= 0.0:
        raise ValueError(f"margin must be a non-negative share, got {margin}")
    alpha = (1.0 - confidence) / max(1, int(looks))
    t = {int(d): np.asarray(v, dtype=float) for d, v in tuned.items()}
    f = {int(d): np.asarray(v, dtype=float) for d, v in fixed.items()}
    depths = sorted(set(t) & set(f))
    gains = _gains(t, f, confidence)
    means = [float(_finite(t[d]).mean()) for d in depths if _finite(t[d]).size]
    margin_abs = margin * min(abs(m) for m in means) if means else None
    fixed_loses, tuned_beats, tuned_loses, fixed_beats = _naive(t, f, naive_loss, alpha)

    reasons: list[str] = []
    opposite = _opposite_calls(tuned_verdict, fixed_verdict)
    reasons += [
        f"tuned, depth {a} is shown better than depth {b}; with the fixed setting, depth {b} is shown better than "
        f"depth {a}"
        for a, b in opposite
    ]
    pairs = [(a, b) for i, a in enumerate(depths) for b in depths[i + 1 :]]
    inter = {(a, b): _interaction(t[a], t[b], f[a], f[b]) for a, b in pairs}
    rows, flips = _interaction_rows(inter, t, f, alpha, margin_abs)
    called = {frozenset(pair) for pair in opposite}
    reasons += [text for pair, text in flips if frozenset(pair) not in called]
    if fixed_loses and tuned_beats:
        reasons.append(
            "with the fixed setting every depth does worse than the naive forecast, while tuned depths beat it"
        )
    if tuned_loses and fixed_beats:
        reasons.append("tuned, every depth does worse than the naive forecast, while the fixed setting beats it")

    needed = None
    if reasons:
        changed: bool | None = True
    elif len(depths) < 2:
        changed = None
        reasons.append("one depth: there is no comparison between depths to change")
    elif margin_abs is not None and rows and all(r["equivalent"] for r in rows) and len(rows) == len(pairs):
        changed = False
        reasons.append(
            f"every difference between two depths is the same tuned and fixed within ±{margin_abs:.3g} "
            f"({margin:.0%} of the best tuned mean test loss), by two one-sided tests"
        )
    else:
        changed = None
        order_t = sorted(depths, key=lambda d: float(np.mean(t[d])))
        order_f = sorted(depths, key=lambda d: float(np.mean(f[d])))
        beyond = any(abs(row["interaction"]) >= (margin_abs or 0.0) for row in rows)
        if order_t == order_f and len(rows) == len(pairs) and margin_abs is not None and beyond:
            ordered = ", ".join(map(str, order_t))
            reasons.append(
                f"both settings order the depths alike by mean test loss ({ordered}), but the differences between "
                f"depths are not the same within ±{margin_abs:.3g}, which more seeds would not change"
            )
        else:
            needed = _needed_seeds(inter, t, f, alpha, margin_abs)
            reasons.append(_undecided_reason(len(rows) < len(pairs), needed))
    comparison = SettingsComparison(
        changed=changed,
        reasons=reasons,
        gains=gains,
        margin=margin_abs,
        margin_share=margin,
        fixed_loses_to_naive=fixed_loses,
        tuned_beats_naive=tuned_beats,
        needed_seeds=needed,
        interactions=rows,
    )
    return SettingsComparison(**{**comparison.__dict__, "sentence": _sentence(comparison)})


def _opposite_calls(tuned: stats.Verdict, fixed: stats.Verdict) -> list[tuple[int, int]]:
    """Pairs called for one depth tuned and for the other with the fixed setting, as (tuned's better, other)."""
    fixed_calls = {(p.a, p.b): p.better for p in fixed.pairs}
    out = []
    for p in tuned.pairs:
        other = fixed_calls.get((p.a, p.b))
        if p.better is not None and other is not None and other != p.better:
            out.append((p.better, p.b if p.better == p.a else p.a))
    return out


def _interaction_rows(
    inter: dict, t: dict, f: dict, alpha: float, margin: float | None
) -> tuple[list[dict[str, Any]], list[tuple[tuple[int, int], str]]]:
    """Every pair's interaction with its Holm-adjusted p-value and equivalence, and the reasons for a change: a
    significant interaction where the order of the two depths flips."""
    rows, keys = [], [k for k, v in inter.items() if v is not None]
    if not keys:
        return rows, []
    p_raw = []
    for a, b in keys:
        est, se, dof = inter[(a, b)]
        p_raw.append(
            0.0 if se == 0.0 and est != 0.0 else (1.0 if se == 0.0 else 2.0 * _special.stdtr(dof, -abs(est) / se))
        )
    adjusted = stats._holm(np.array(p_raw))
    reasons = []
    for (a, b), p_adj in zip(keys, adjusted, strict=True):
        est, se, dof = inter[(a, b)]
        quantile = float(_special.stdtrit(dof, 1.0 - alpha)) if math.isfinite(dof) else float(_special.ndtri(1 - alpha))
        low, high = est - quantile * se, est + quantile * se  # the 1 - 2 alpha interval of TOST
        equivalent = margin is not None and -margin < low and high < margin
        tuned_diff = float(t[a].mean() - t[b].mean())
        fixed_diff = float(f[a].mean() - f[b].mean())
        flips = tuned_diff * fixed_diff < 0
        rows.append(
            {
                "a": int(a),
                "b": int(b),
                "tuned_difference": tuned_diff,
                "fixed_difference": fixed_diff,
                "interaction": est,
                "interaction_ci": [low, high],
                "p_adjusted": float(p_adj),
                "equivalent": bool(equivalent),
            }
        )
        if flips and p_adj < alpha:
            better_tuned, better_fixed = (a, b) if tuned_diff < 0 else (b, a)
            reasons.append(
                (
                    (a, b),
                    f"tuned, depth {better_tuned} does better than depth {better_fixed} and with the fixed setting "
                    f"worse, a change between the settings that is significant (adjusted p = {p_adj:.2g})",
                )
            )
    return rows, reasons


def _needed_seeds(inter: dict, t: dict, f: dict, alpha: float, margin: float | None) -> int | None:
    """Seeds per configuration that would settle the question if the estimates held: for False every pair must
    fit in the margin; for True one pair whose order flips between the settings must flip significantly."""
    quantile = float(_special.ndtri(1.0 - alpha))
    to_false, to_true = [], []
    for (a, b), value in inter.items():
        if value is None:
            return None
        est, se, _ = value
        n = int(min(t[a].size, t[b].size))
        if margin is not None:
            to_false.append(_seeds_for(n, se, margin - abs(est), quantile))
        if float(t[a].mean() - t[b].mean()) * float(f[a].mean() - f[b].mean()) < 0:
            to_true.append(_seeds_for(n, se, abs(est), quantile))
    candidates = ([max(to_false)] if to_false else []) + ([min(to_true)] if to_true else [])
    return min(candidates) if candidates else None


def _undecided_reason(missing: bool, needed: int | None) -> str:
    if missing:
        return "a depth has failed runs or too few to compare the two settings"
    if needed is None or needed > _MOST_SEEDS:
        return f"the settings cannot be told apart or shown alike with these seeds, nor with up to {_MOST_SEEDS}"
    return (
        f"the settings are neither shown to differ nor shown alike; about {needed} seeds per configuration would "
        "settle it if the estimates held"
    )


def _sentence(c: SettingsComparison) -> str:
    if c.changed is True:
        return "the conclusion changed (" + "; and ".join(c.reasons) + ")."
    if c.changed is False:
        return "the conclusion is the same (" + c.reasons[-1] + ")."
    return "whether the conclusion changed cannot be told yet (" + c.reasons[-1] + ")."


def naive_sentence(fixed: Mapping[int, Sequence[float]], naive_kind: str, naive_loss: float, setting: str) -> str:
    """The headline when the fixed setting loses to the naive forecast at every depth while tuned depths beat it."""
    means = [float(_finite(v).mean()) for v in fixed.values() if _finite(v).size]
    spread = f"{min(means):.4g}" if len(means) == 1 else f"{min(means):.4g} to {max(means):.4g}"
    depths = depths_phrase(sorted(int(d) for d in fixed))
    return (
        f"With one fixed setting ({setting}), every depth does worse than the naive {naive_kind} forecast "
        f"({depths}: test loss {spread} against {naive_loss:.4g}), while tuned depths beat it: the fixed-setting "
        "comparison would say an LSTM is worse than repeating the past, and tuning says otherwise."
    )
