"""Forecasting preparation: chronological split, per-split windowing and train-only scaling.

Targets are laid out step-major: y[:, h * n_targets + j] is target j at step h + 1 after
the window, so `y.reshape(samples, horizon, n_targets)` recovers the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import DataError
from .types import Prepared, Split


@dataclass(frozen=True)
class Series:
    """A series in time order: values (rows, columns) and which of the columns are inputs and targets."""

    values: np.ndarray
    columns: list[str]
    features: list[str]
    targets: list[str]


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
) -> Prepared:
    """Split `series` by time, scale with training-segment statistics and window each segment on its own.

    `where` names the data (a file or a dataset) in error messages.
    """
    rows = len(series.values)
    need = window_size + horizon
    bounds = segment_bounds(rows, val_fraction=val_fraction, test_fraction=test_fraction)
    if min(end - start for start, end in bounds.values()) < need:
        least = _rows_needed(need, val_fraction=val_fraction, test_fraction=test_fraction)
        raise DataError(
            f"{where}: series has {rows} rows but window {window_size} + horizon {horizon} need {need} rows "
            f"in each of train/val/test, so at least {least} rows with val_fraction {val_fraction} "
            f"and test_fraction {test_fraction}"
        )

    position = {column: i for i, column in enumerate(series.columns)}
    x = series.values[:, [position[c] for c in series.features]].astype(np.float64)
    y = series.values[:, [position[c] for c in series.targets]].astype(np.float64)
    meta: dict = {
        "source": source,
        "length": rows,
        "columns": list(series.features),
        "targets": list(series.targets),
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
        **splits,
    )
