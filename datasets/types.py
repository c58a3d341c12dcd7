"""The shapes that every loader returns and every consumer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry, as `stacktune datasets` lists it."""

    name: str
    task: Task
    length: int  # time steps of a series, or number of sequences for a classification set
    channels: int
    classes: int | None
    source: str
    description: str = ""


@dataclass
class Split:
    """One split, ready for a model.

    x: float32 (samples, time, channels); y: float32 (samples, outputs) for regression,
    int64 (samples,) for classification; lengths: int64 (samples,) when sequences have
    different lengths (x is then right-padded with zeros), else None.
    """

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Prepared:
    """A windowed, split and scaled dataset: what the trainer consumes."""

    name: str
    task: Task
    input_size: int
    output_size: int  # regression: horizon * targets; classification: number of classes
    train: Split
    val: Split
    test: Split
    # scaler statistics, column names, split sizes; for series also the transform and season (see prepare_series)
    meta: dict = field(default_factory=dict)
    # A forecast's whole (transformed, scaled) series as rows: inputs (rows, features) and targets (rows, targets),
    # from which the evaluation's rolling origins are cut (see datasets.origins); None for sequence sets.
    rows: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
