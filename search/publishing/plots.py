"""The PNG plots of a search's report, drawn from its `Comparison` alone.

Each plot is drawn only when the comparison holds data for it; `draw_plots` writes those that have
data and removes stale ones. Their words (labels, the confidence level, the loss's unit) come from words.py,
which the report's text shares.

matplotlib and numpy are imported lazily (inside the drawing functions), so importing this module is cheap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..verdict.comparison import Comparison, DepthEntry, FixedResult, finite, interval, series, values
from .words import importance_axis_words, importance_methods, level_text, loss_unit, param_label

__all__ = ["draw_plots", "PLOT_FILES"]

# The plots this module may write, in the order they appear in the report.
PLOT_FILES = (
    "test_loss_by_depth.png",
    "expected_best.png",
    "expected_best_seconds.png",
    "val_curves.png",
    "importance.png",
)

_DPI = 110
_SIZE = (7.0, 4.0)
_TUNED_COLOUR = "#1f77b4"
_FIXED_COLOUR = "#7f7f7f"
_WINNER_COLOUR = "#f2c14e"


# ----------------------------------------------------------------------------- figure helpers


def _depth_colours(entries: list[DepthEntry]) -> dict[int, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {e.depth: cmap(i % 10) for i, e in enumerate(entries)}


def _new_figure(size=_SIZE):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, format="png", metadata={"Software": None})
    return path


def _curve_figure(entries: list[DepthEntry], key: str):
    """A figure with one line per depth of the per-epoch or per-trial list `key`; None when no depth has a finite point.

    Returns (fig, ax, lines): lines holds (entry, x, y, colour) in depth order for the depths with a curve,
    x = 1..N and y the curve with NaN for missing points. The x axis counts in integers, with a light grid.
    """
    curves = {e.depth: series(getattr(e, key)) for e in entries}
    curves = {d: c for d, c in curves.items() if any(math.isfinite(v) for v in c)}
    if not curves:
        return None
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    colours = _depth_colours(entries)
    fig, ax = _new_figure()
    lines = []
    for e in entries:
        d = e.depth
        if d in curves:
            y = np.array(curves[d])
            lines.append((e, np.arange(1, y.size + 1), y, colours[d]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig, ax, lines


# ----------------------------------------------------------------------------- the plots


def _plot_test_loss(comparison: Comparison, entries: list[DepthEntry], path: Path) -> Path | None:
    tuned: dict[int, DepthEntry | FixedResult] = {e.depth: e for e in entries if e.has_test}
    fixed: dict[int, DepthEntry | FixedResult] = {e.depth: e.fixed_scores for e in entries if e.fixed_scores}
    if not tuned and not fixed:
        return None
    import numpy as np

    shown = [e.depth for e in entries if e.depth in tuned or e.depth in fixed]
    xs = {d: i for i, d in enumerate(shown)}
    both = bool(tuned) and bool(fixed)
    offset = 0.17 if both else 0.0
    rng = np.random.default_rng(0)
    level = level_text(comparison)
    verdict = comparison.verdict
    winner = verdict.winner if verdict is not None else None
    tied = (verdict.tied or []) if verdict is not None else []
    highlighted = [winner] if winner is not None else (list(tied) if len(tied) > 1 else [])

    fig, ax = _new_figure()
    _shade_highlighted(ax, highlighted, xs, tuned_winner=winner is not None)
    origins = comparison.origins or []
    at = {kind: _origin_means(origins, kind) for kind in ("tuned", "fixed")}
    if tuned:
        label = f"tuned per depth: mean, {level} CI"
        _test_loss_series(ax, tuned, shown, xs, rng, -offset, _TUNED_COLOUR, "o", label, origins=at["tuned"])
    if fixed:
        label = f"one fixed setting: mean, {level} CI"
        _test_loss_series(ax, fixed, shown, xs, rng, offset, _FIXED_COLOUR, "s", label, origins=at["fixed"])
    if any(values(scores.test_losses) for scores in [*tuned.values(), *fixed.values()]):
        ax.scatter([], [], s=12, color="#555555", alpha=0.4, lw=0, label="single seeds")
    if (comparison.replicates or 1) > 1:
        ax.scatter([], [], s=30, marker="D", facecolors="none", edgecolors="#555555", label="each search's mean")
    if len(origins) > 1:
        ax.scatter([], [], s=30, marker="x", color="#555555", label="each data origin's mean")
    _finish_test_loss_axes(ax, comparison, shown, highlighted, both)
    return _save(fig, path)


def _shade_highlighted(ax, highlighted: list[int], xs: dict[int, int], *, tuned_winner: bool) -> None:
    """Shades the column of the winner (or of each depth tied for first), labelling only the first shaded one."""
    for d in highlighted:
        if d in xs:
            label = "winner (tuned)" if tuned_winner else "tied for first (tuned)"
            first = d == next(h for h in highlighted if h in xs)
            ax.axvspan(
                xs[d] - 0.45,
                xs[d] + 0.45,
                color=_WINNER_COLOUR,
                alpha=0.25,
                lw=0,
                zorder=0,
                label=label if first else None,
            )


def _origin_means(origins: list, kind: str) -> dict[int, list[float]]:
    """Each depth's mean test loss at each data origin, tuned or with the fixed setting (the finite ones)."""
    found: dict[int, list[float]] = {}
    for origin in origins:
        for d in origin.depths:
            value = getattr(d, kind)
            if finite(value):
                found.setdefault(d.depth, []).append(float(value))
    return found


def _test_loss_series(
    ax,
    items: dict,
    shown: list[int],
    xs: dict[int, int],
    rng,
    shift: float,
    colour: str,
    marker: str,
    label: str,
    *,
    origins: dict[int, list[float]] | None = None,
) -> None:
    """Draws one series of test losses: each seed as a jittered dot (from `rng`), the mean with its CI as a bar,
    each replicate search's mean as an open diamond and each data origin's mean (`origins`) as a cross."""
    import numpy as np

    depths = [d for d in shown if d in items]
    x = np.array([xs[d] + shift for d in depths])
    means = np.array([items[d].test_loss_mean for d in depths], dtype=float)
    lows, highs = [], []
    for d, m in zip(depths, means, strict=False):
        ci = interval(items[d].test_loss_ci95) or (m, m)
        lows.append(max(0.0, m - ci[0]))
        highs.append(max(0.0, ci[1] - m))
    for xi, d in zip(x, depths, strict=False):
        pts = values(items[d].test_losses)
        if pts:
            jitter = rng.uniform(-0.05, 0.05, len(pts))
            ax.scatter(xi + jitter, pts, s=12, color=colour, alpha=0.3, lw=0, zorder=2)
        searches = [r.test_loss_mean for r in getattr(items[d], "replicates", None) or [] if finite(r.test_loss_mean)]
        if len(searches) > 1:  # each replicate search's mean over its seeds, as an open diamond
            ax.scatter(
                [xi + 0.12] * len(searches), searches, s=30, marker="D", facecolors="none", edgecolors=colour, zorder=3
            )
        at_origins = (origins or {}).get(d, [])
        if len(at_origins) > 1:  # each data origin's mean, as a cross
            ax.scatter([xi - 0.12] * len(at_origins), at_origins, s=30, marker="x", color=colour, lw=1.2, zorder=3)
    ax.errorbar(
        x,
        means,
        yerr=[lows, highs],
        fmt=marker,
        color=colour,
        ms=7,
        capsize=4,
        lw=1.6,
        zorder=3,
        label=label,
    )


def _finish_test_loss_axes(ax, comparison: Comparison, shown: list[int], highlighted: list[int], both: bool) -> None:
    """Labels the test-loss axes (winner's depth in bold), adds the best naive baseline's line, title and legend."""
    ax.set_xticks(range(len(shown)), [str(d) for d in shown])
    for tick, d in zip(ax.get_xticklabels(), shown, strict=False):
        if d in highlighted:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_xlabel("depth (stacked LSTM layers)")
    ax.set_ylabel(f"test loss ({loss_unit(comparison)})")
    best = comparison.best_baseline
    if best is not None:
        ax.axhline(best.loss, color="#d62728", ls="--", lw=1.2, label=f"naive {best.name}")
    title = "Test loss by depth: tuned per depth vs one fixed setting" if both else "Test loss by depth"
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def _plot_expected_best(comparison: Comparison, entries: list[DepthEntry], path: Path) -> Path | None:
    drawn = _curve_figure(entries, "expected_best")
    if drawn is None:
        return None
    import numpy as np

    fig, ax, lines = drawn
    for e, x, y, colour in lines:
        std = np.array(series(e.expected_best_std))
        if std.size == y.size:
            ax.fill_between(x, y - std, y + std, color=colour, alpha=0.15, lw=0)
        ax.plot(x, y, color=colour, lw=2, marker="o" if y.size <= 30 else None, ms=3, label=f"depth {e.depth}")
    ax.set_xlim(0.8, max(y.size for _, _, y, _ in lines) + 0.2)
    ax.set_xlabel("trials")
    ax.set_ylabel(f"expected best val loss\n({loss_unit(comparison)})")
    ax.set_title("Expected best validation loss vs. number of trials (±1 std)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9, title="depth ± 1 std", title_fontsize=8)
    return _save(fig, path)


def _plot_expected_best_seconds(comparison: Comparison, entries: list[DepthEntry], path: Path) -> Path | None:
    """The expected best against the training seconds n trials cost: budgets compared in time, not in trials."""
    import numpy as np

    curves = []
    for e in entries:
        x, y = series(e.expected_best_seconds), series(e.expected_best)
        if x and len(x) == len(y) and any(math.isfinite(v) for v in y):
            curves.append((e, np.array(x), np.array(y)))
    if len(curves) < 2:
        return None
    colours = _depth_colours(entries)
    fig, ax = _new_figure()
    for e, x, y in curves:
        ax.plot(x, y, color=colours[e.depth], lw=2, marker="o" if y.size <= 30 else None, ms=3)
        ax.plot([], [], color=colours[e.depth], lw=2, label=f"depth {e.depth}")
    ax.grid(alpha=0.3)
    ax.set_xlabel("training seconds (n trials x the depth's mean trial time)")
    ax.set_ylabel(f"expected best val loss\n({loss_unit(comparison)})")
    ax.set_title("Expected best validation loss vs. training time")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, path)


def _plot_val_curves(comparison: Comparison, entries: list[DepthEntry], path: Path) -> Path | None:
    drawn = _curve_figure(entries, "val_curve")
    if drawn is None:
        return None
    import numpy as np

    fig, ax, lines = drawn
    for e, x, y, colour in lines:
        ax.plot(x, y, color=colour, lw=1.8, label=f"depth {e.depth}")
        best = int(np.nanargmin(y))
        ax.plot(x[best], y[best], marker="o", color=colour, ms=5)
    finite = [v for _, _, y, _ in lines for v in y if math.isfinite(v)]
    if min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation loss ({loss_unit(comparison)})")
    ax.set_title("Validation loss per epoch, best trial of each depth (dot: best epoch)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, path)


def _importance_axis_label(methods: list[str | None]) -> str:
    words = importance_axis_words(methods[0]) if len(methods) == 1 else None
    if words:
        return f"importance ({words}; sums to 1 per depth)"
    names = " or ".join(m or "method not recorded" for m in methods)
    return f"importance ({names}; sums to 1 per depth)"


def _plot_importance(comparison: Comparison, entries: list[DepthEntry], path: Path) -> Path | None:
    tables = {
        e.depth: {k: float(v) for k, v in e.importance.items() if finite(v)}
        for e in entries
        if isinstance(e.importance, dict)
    }
    tables = {d: t for d, t in tables.items() if t}
    if not tables:
        return None
    import numpy as np

    # Most important first, by the total over depths (a parameter a depth lacks counts 0 there).
    names = sorted({k for t in tables.values() for k in t}, key=lambda k: -sum(t[k] for t in tables.values() if k in t))
    depths = [e.depth for e in entries if e.depth in tables]
    colours = _depth_colours(entries)
    height = min(7.0, max(_SIZE[1], 1.0 + 0.12 * len(names) * len(depths) + 0.15 * len(names)))
    fig, ax = _new_figure((_SIZE[0], height))
    bar = 0.8 / len(depths)
    y = np.arange(len(names))
    for i, d in enumerate(depths):
        values = [tables[d][k] if k in tables[d] else np.nan for k in names]
        ax.barh(y - 0.4 + bar * (i + 0.5), values, height=bar * 0.95, color=colours[d], label=f"depth {d}")
    ax.set_yticks(y, [param_label(k) for k in names])
    ax.invert_yaxis()
    ax.set_xlim(0, max(1e-9, max(v for t in tables.values() for v in t.values())) * 1.08)
    ax.set_xlabel(_importance_axis_label(importance_methods([e for e in entries if e.depth in tables])))
    ax.set_title("Which hyperparameters mattered, by depth")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _save(fig, path)


_PLOTS = {
    "test_loss_by_depth.png": _plot_test_loss,
    "expected_best.png": _plot_expected_best,
    "expected_best_seconds.png": _plot_expected_best_seconds,
    "val_curves.png": _plot_val_curves,
    "importance.png": _plot_importance,
}


# ----------------------------------------------------------------------------- entry point


def draw_plots(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Writes the plots of PLOT_FILES that have data into the existing out_dir; returns their paths in that order.

    A plot left over in out_dir from an earlier report whose data is now missing is removed.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    entries = sorted(comparison.depths, key=lambda e: e.depth)
    written: list[Path] = []
    with matplotlib.rc_context(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        for filename in PLOT_FILES:
            path = out_dir / filename
            if _PLOTS[filename](comparison, entries, path) is not None:
                written.append(path)
            elif path.exists():
                path.unlink()
    return written
