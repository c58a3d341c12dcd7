"""Numbers, intervals and settings as the report writes them: '–' for what is missing, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..verdict.comparison import DatasetInfo, FixedSetting, Verdict, config_lr, config_units, finite, interval


def num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; '–' for missing or non-finite values."""
    if not finite(value):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def integer(value: Any) -> str:
    return f"{int(value):,}" if finite(value) else "–"


def mean_ci(mean: Any, ci: Any) -> str:
    """'0.2100 [0.1900, 0.2300]' style: the mean, then its interval when there is one."""
    if not finite(mean):
        return "–"
    bounds = interval(ci)
    if bounds is None:
        return num(mean)
    return f"{num(mean)} [{num(bounds[0])}, {num(bounds[1])}]"


def units_text(cfg: dict | None) -> str:
    units = config_units(cfg)
    if units is None:
        return "–"
    return "[" + ", ".join(str(u) for u in units) + "]"


def lr_text(cfg: dict | None) -> str:
    return num(config_lr(cfg))


def pvalue(value: Any) -> str:
    if not finite(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def p_clause(value: Any) -> str:
    """'adjusted p < 0.001' or 'adjusted p = 0.012', for running text."""
    shown = pvalue(value)
    return f"adjusted p {shown}" if shown.startswith("<") else f"adjusted p = {shown}"


def prob(value: Any) -> str:
    return f"{value:.2f}" if finite(value) else "–"


def prob_ci(value: Any, ci: Any) -> str:
    bounds = interval(ci)
    if bounds is None:
        return prob(value)
    return f"{prob(value)} [{prob(bounds[0])}, {prob(bounds[1])}]"


def prose_ci(mean: Any, ci: Any, level: str) -> str:
    """'0.2108 (95% CI 0.203–0.2184)' for running text."""
    bounds = interval(ci)
    if bounds is None:
        return num(mean)
    return f"{num(mean)} ({level} CI {num(bounds[0])}–{num(bounds[1])})"


def dataset_text(dataset: DatasetInfo | None) -> str:
    if dataset is None:
        return "the dataset"
    name = dataset.name or (Path(str(dataset.csv)).name if dataset.csv else None) or "the dataset"
    sizes = {"window": dataset.window, "horizon": dataset.horizon, "season": dataset.season}
    extras = [f"{k} {v}" for k, v in sizes.items() if v is not None]
    if dataset.transform not in (None, "none"):
        extras.append(f"transform {dataset.transform}: losses are on the series' changes")
    return f"`{name}`" + (f" ({', '.join(extras)})" if extras else "")


def baseline_text(baseline: FixedSetting | None) -> str:
    if baseline is None:
        return "one fixed setting"
    parts = []
    if baseline.units is not None:
        parts.append(f"{baseline.units} units per layer")
    if baseline.lr is not None:
        parts.append(f"lr {num(baseline.lr)}")
    if baseline.dropout is not None:
        parts.append(f"dropout {num(baseline.dropout)}")
    if baseline.batch_size is not None:
        parts.append(f"batch size {baseline.batch_size}")
    return ", ".join(parts) if parts else "one fixed setting"


def named(verdict: Verdict | None) -> Verdict | None:
    """The verdict when it names the winner or the depths tied for first, else None."""
    return verdict if verdict is not None and verdict.names_best else None


def budget_phrase(trials: Any, searches: int = 1) -> str:
    if not trials:
        return "the same budget"
    if searches > 1:
        return f"the same budget ({trials} trials per search, {searches} searches per depth)"
    return f"the same budget ({trials} trials per depth)"
