"""Forecasting preparation: an optional differencing transform, chronological split, per-split
windowing and train-only scaling.

Targets are laid out step-major: y[:, h * n_targets + j] is target j at step h + 1 after
the window, so `y.reshape(samples, horizon, n_targets)` recovers the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import DataError
from .types import Prepared, Split

# The most float32 values (2 GB) a prepared set may hold: windows overlap, so a long series with a wide window
# makes far more values than it has; checked before anything is allocated.
MAX_PREPARED_VALUES = 500_000_000


@dataclass(frozen=True)
class Series:
    """A series in time order: values (rows, columns) and which of the columns are inputs and targets.

    `lines` (one per row) are the rows' CSV line numbers, for messages; None for built-in sets.
    """

    values: np.ndarray
    columns: list[str]
    features: list[str]
    targets: list[str]
    lines: np.ndarray | None = None


def transform_series(series: Series, transform: str, *, where: str) -> Series:
    """Return `series` with every column replaced by its first differences ("diff") or those of its
    natural log ("log_diff"), one row shorter; "none" returns it unchanged.

    Row i of the result is the change from original row i to row i + 1. Raises DataError naming
    the first value <= 0 for "log_diff".
    """
    if transform == "none":
        return series
    values = np.asarray(series.values, dtype=np.float64)
    if transform == "log_diff":
        bad = ~(values > 0)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])  # first in time order, then in column order
            at = f"line {int(series.lines[row])}" if series.lines is not None else f"row {row + 1}"
            raise DataError(
                f"{where}: transform log_diff needs values > 0, but column {series.columns[col]!r} "
                f"has {values[row, col]:g} at {at}"
            )
        values = np.log(values)
    elif transform != "diff":
        raise ValueError(f"transform must be 'none', 'diff' or 'log_diff', got {transform!r}")
    lines = None if series.lines is None else series.lines[1:]
    return Series(np.diff(values, axis=0), series.columns, series.features, series.targets, lines)


def segment_bounds(rows: int, *, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Return the [start, end) rows of the train, val and test segments, in time order."""
    n_val, n_test = round(rows * val_fraction), round(rows * test_fraction)
    val_start, test_start = rows - n_val - n_test, rows - n_test
    return {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, rows)}


def _rows_needed(need: int, *, val_fraction: float, test_fraction: float) -> int:
    """Return the fewest rows for which every segment has at least `need` rows."""
    rows = 3 * need
    while (
        min(
            end - start
            for start, end in segment_bounds(rows, val_fraction=val_fraction, test_fraction=test_fraction).values()
        )
        < need
    ):
        rows += 1
    return rows


def standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per-column mean and std of `train` rows; a constant column gets std 1, not 0."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def make_windows(x: np.ndarray, y: np.ndarray, *, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut one segment into x (samples, window, channels) and the next `horizon` target rows, step-major."""
    count = len(x) - window - horizon + 1
    inputs = sliding_window_view(x, window, axis=0)[:count].transpose(0, 2, 1)
    outputs = sliding_window_view(y[window:], horizon, axis=0)[:count].transpose(0, 2, 1)
    return (
        np.ascontiguousarray(inputs, dtype=np.float32),
        np.ascontiguousarray(outputs.reshape(count, -1), dtype=np.float32),
    )


def _check_windowed_size(
    series: Series, bounds: dict[str, tuple[int, int]], *, window_size: int, horizon: int, where: str
) -> None:
    """Raise DataError when the windows of every segment would hold more than MAX_PREPARED_VALUES values."""
    samples = sum(max(end - start - window_size - horizon + 1, 0) for start, end in bounds.values())
    per_sample = window_size * len(series.features) + horizon * len(series.targets)
    if samples * per_sample > MAX_PREPARED_VALUES:
        raise DataError(
            f"{where}: window {window_size} over {len(series.values)} rows makes {samples * per_sample} values, "
            f"over the {MAX_PREPARED_VALUES} a prepared set may hold; use a smaller window or fewer rows"
        )


def prepare_series(
    series: Series,
    *,
    name: str,
    source: str,
    where: str,
    window_size: int,
    horizon: int,
    val_fraction: float,
    test_fraction: float,
    scale: bool,
    transform: str = "none",
    season: int | None = None,
) -> Prepared:
    """Transform `series` (see transform_series), split it by time, scale with training-segment
    statistics and window each segment on its own.

    `where` names the data (a file or a dataset) in error messages. Everything after the transform
    works on the transformed series: `meta["length"]` and `meta["segments"]` count its rows, and
    losses reported on the prepared data are on the transformed, scaled values. To undo the
    transform for the targets, `meta["transform_anchor"][split]` holds each target's original
    (untransformed, unscaled) value at the segment's start row, the value just before its first
    change: original row `start + k + 1` is the anchor plus the sum of the segment's (unscaled)
    changes 0..k, in log space for "log_diff". It is None when the transform is "none".
    `meta["season"]` is `season` as given, and `meta["target_in_inputs"]` holds, for each target,
    its index among the input features, or None when it is not an input.
    """
    original = series
    series = transform_series(series, transform, where=where)
    rows = len(series.values)
    need = window_size + horizon
    bounds = segment_bounds(rows, val_fraction=val_fraction, test_fraction=test_fraction)
    if min(end - start for start, end in bounds.values()) < need:
        least = _rows_needed(need, val_fraction=val_fraction, test_fraction=test_fraction)
        if transform == "none":
            after, least_rows = "", f"{least} rows"
        else:  # the transform costs one row, which the file must make up
            after, least_rows = f" after the {transform} transform", f"{least + 1} rows before it"
        raise DataError(
            f"{where}: series has {rows} rows{after} but window {window_size} + horizon {horizon} need {need} "
            f"rows in each of train/val/test, so at least {least_rows} with val_fraction {val_fraction} "
            f"and test_fraction {test_fraction}"
        )
    _check_windowed_size(series, bounds, window_size=window_size, horizon=horizon, where=where)

    position = {column: i for i, column in enumerate(series.columns)}
    x = series.values[:, [position[c] for c in series.features]].astype(np.float64)
    target_columns = [position[c] for c in series.targets]
    y = series.values[:, target_columns].astype(np.float64)
    if transform == "none":
        anchor = None
    else:
        # transformed row i is the change from original row i to i + 1, so a segment starting at
        # row `start` continues from original row `start`
        anchor = {
            split: np.asarray(original.values[start, target_columns], dtype=np.float64).tolist()
            for split, (start, _) in bounds.items()
        }
    meta: dict = {
        "source": source,
        "length": rows,
        "columns": list(series.features),
        "targets": list(series.targets),
        "target_in_inputs": [series.features.index(c) if c in series.features else None for c in series.targets],
        "transform": transform,
        "transform_anchor": anchor,
        "season": season,
        "window": window_size,
        "horizon": horizon,
        "y_layout": "step-major",
        "scaled": scale,
        "segments": {split: list(b) for split, b in bounds.items()},
    }
    if scale:
        train_end = bounds["train"][1]
        x_mean, x_std = standardise(x[:train_end])
        y_mean, y_std = standardise(y[:train_end])
        x, y = (x - x_mean) / x_std, (y - y_mean) / y_std
        # Repeated per horizon step so that y * y_std + y_mean undoes the scaling in one broadcast.
        meta.update(
            x_mean=x_mean.tolist(),
            x_std=x_std.tolist(),
            y_mean=np.tile(y_mean, horizon).tolist(),
            y_std=np.tile(y_std, horizon).tolist(),
        )
    else:
        meta.update(x_mean=None, x_std=None, y_mean=None, y_std=None)

    splits = {
        split: Split(*make_windows(x[start:end], y[start:end], window=window_size, horizon=horizon))
        for split, (start, end) in bounds.items()
    }
    meta["sizes"] = {split: len(s) for split, s in splits.items()}
    return Prepared(
        name=name,
        task="regression",
        input_size=len(series.features),
        output_size=horizon * len(series.targets),
        meta=meta,
        rows=(x.astype(np.float32), y.astype(np.float32)),
        **splits,
    )
