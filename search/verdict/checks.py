"""Sanity checks beside the verdict: naive baselines scored on the same test split, each depth's skill against
them, and the warnings that say when the verdict's premises are shaky (a budget cut short, a range too narrow,
data that shifted, too few test windows or seeds)."""

from __future__ import annotations

import math
from typing import Any

from ..spec.schema import FloatRange, IntRange, MatchedUnits, SearchSpec, UnitChoices
from . import baselines, diagnostics, versus_fixed
from .comparison import Comparison


def add_baselines(comparison: Comparison, data, *, found: list[dict] | None = None) -> None:
    """Scores the naive forecasts (or the majority class) on the test split and each depth's skill against the best;
    ``found`` is those already scored (`baselines.naive_baselines(data)`), so they are not scored twice.

    When every evaluated depth does worse than it, `comparison.loses_to_naive` is set and the headline says so.
    """
    found = baselines.naive_baselines(data) if found is None else found
    comparison.baselines = found
    best = baselines.best_baseline(found)
    if best is None:
        return
    tested = {e.depth: e.test_loss_mean for e in comparison.depths if e.test_loss_mean is not None}
    for entry in comparison.depths:
        if entry.test_loss_mean is not None:
            entry.skill = baselines.skill(entry.test_loss_mean, best["loss"])
    comparison.loses_to_naive = bool(tested) and diagnostics.every_depth_loses(tested, best["loss"])


def headline(comparison: Comparison) -> str | None:
    """The sentence that goes before the verdict when every depth loses to the naive baseline, or when the fixed
    setting does at every depth while tuned depths beat it; else None."""
    best = comparison.best_baseline
    if best is None:
        return None
    if not comparison.loses_to_naive:
        tuned_beats_naive = comparison.tuning is not None and comparison.tuning.tuned_beats_naive
        if not (comparison.fixed_loses_to_naive and tuned_beats_naive):
            return None
        fixed = {e.depth: e.fixed.test_losses for e in comparison.depths if e.fixed and e.fixed.test_losses}
        fixed = {d: [math.inf if v is None else v for v in losses] for d, losses in fixed.items()}
        b = comparison.baseline
        setting = f"{b.units} units per layer, lr {b.lr:g}" if b is not None and b.lr is not None else "as given"
        return versus_fixed.naive_sentence(fixed, best.name, best.loss, setting)
    losses = [e.test_loss_mean for e in comparison.depths if e.test_loss_mean is not None]
    spread = f"{min(losses):.4g}" if len(losses) == 1 else f"{min(losses):.4g} to {max(losses):.4g}"
    return (
        f"Every depth does worse than the naive {best.name} forecast {_where_tested(comparison)} "
        f"(test loss {spread} against {best.loss:.4g}): none of them has learnt what the naive forecast knows, "
        "so which depth wins matters less than why all lose."
    )


def _where_tested(comparison: Comparison) -> str:
    origins = comparison.origins or []
    if len(origins) > 1 and origins[0].kind == "rolling":
        return f"over the test blocks of its {len(origins)} origins"
    return "on the test split"


def add_warnings(
    spec: SearchSpec,
    comparison: Comparison,
    data,
    *,
    eval_val_loss: dict[int, float],
    origins: list | None = None,
    origin_val: dict[int, dict[int, float]] | None = None,
) -> None:
    """Collects every warning the search's figures support into `comparison.warnings`.

    With several data origins (`origins`, the prepared sets; `origin_val`, each one's mean validation loss per
    depth), the distribution-shift checks run at each origin on its own figures, and the test windows are counted
    over all of them."""
    entries = [e for e in comparison.depths if e.best_config is not None]
    evaluated = bool(comparison.evaluation)
    several = evaluated and origins is not None and len(origins) > 1 and comparison.origins is not None
    warnings = diagnostics.collect(
        val_curves={e.depth: e.val_curve for e in entries if e.val_curve},
        max_epochs=spec.train.epochs,
        best_params={e.depth: _best_params(e.best_config, e.depth) for e in entries},
        ranges_by_depth={e.depth: _ranges(spec, e.depth) for e in entries},
        val_loss_by_depth=None if several else eval_val_loss or None,
        test_loss_by_depth=None
        if several
        else {e.depth: e.test_loss_mean for e in entries if e.test_loss_mean is not None} or None,
        data=data if evaluated and not several else None,
        targets=[] if several else None,
        test_samples=(sum(len(o.test) for o in origins) if several else len(data.test)) if evaluated else None,
        origins=len(origins) if several else 1,
        expected_best={e.depth: e.expected_best for e in entries if e.expected_best},
        verdict=comparison.verdict.to_dict() if comparison.verdict is not None else None,
        seeds=_fewest_seeds(comparison),
    )
    if several:
        for origin, figures in zip(origins, comparison.origins, strict=True):
            tests = {d.depth: d.tuned for d in figures.depths if d.tuned is not None}
            found = diagnostics.distribution_shift(
                val_loss_by_depth=(origin_val or {}).get(figures.number) or None,
                test_loss_by_depth=tests or None,
                targets=diagnostics.target_ranges(origin),
            )
            warnings += [diagnostics.at_origin(w, figures.number, len(origins)) for w in found]
        warnings.sort(key=lambda w: diagnostics.CODES.index(w["code"]))
    comparison.warnings = warnings


def _best_params(config: dict[str, Any], depth: int) -> dict[str, Any]:
    params = {f"units_{i}": width for i, width in enumerate(config["model"]["units"])}
    params["lr"] = config["train"]["lr"]
    if depth > 1:
        params["dropout"] = config["model"]["dropout"]
    return params


def _ranges(spec: SearchSpec, depth: int) -> dict[str, Any]:
    """The searched ranges of one depth by parameter name: (low, high, log), or a list of choices."""
    space = spec.space
    ranges: dict[str, Any] = {}
    units = space.units
    if not isinstance(units, MatchedUnits):
        if isinstance(units, IntRange):
            form: Any = (units.low, units.high, units.log)
        else:
            form = list(units.choices if isinstance(units, UnitChoices) else units)
        ranges.update({f"units_{i}": form for i in range(depth)})
    if isinstance(space.lr, FloatRange):
        ranges["lr"] = (space.lr.low, space.lr.high, space.lr.log)
    if isinstance(space.dropout, FloatRange) and depth > 1:
        ranges["dropout"] = (space.dropout.low, space.dropout.high, space.dropout.log)
    return ranges


def _fewest_seeds(comparison: Comparison) -> int | None:
    counts = [len(e.test_losses) for e in comparison.depths if e.test_losses]
    return min(counts) if counts else None


def finite_mean(values: list[float | None]) -> float | None:
    """The mean of the finite values, or None when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
