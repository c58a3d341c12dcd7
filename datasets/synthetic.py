"""Seeded synthetic datasets, generated in code."""

from __future__ import annotations

import numpy as np

from .catalog import INFOS
from .forecast import Series
from .samples import Sequences
from .spec import DEFAULT_SEQ_LEN, DatasetSpec


def _length(spec: DatasetSpec) -> int:
    """Return the requested length, or the set's default from the registry."""
    return spec.length if spec.length is not None else INFOS[spec.name].length


def sine(spec: DatasetSpec) -> Series:
    """Sum of three sines with seeded periods, amplitudes and phases, plus Gaussian noise."""
    rng = np.random.default_rng(spec.seed)
    t = np.arange(_length(spec), dtype=np.float64)
    periods = rng.uniform(10, 80, size=3)
    amplitudes = rng.uniform(0.5, 1.5, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    values = (amplitudes * np.sin(2 * np.pi * t[:, None] / periods + phases)).sum(axis=1)
    values += rng.normal(0, 0.1, size=len(t))
    return Series(values[:, None], ["sine"], ["sine"], ["sine"])


def linear(spec: DatasetSpec) -> Series:
    """The series 1..N: the textbook case of predicting the next value from the last few."""
    values = np.arange(1, _length(spec) + 1, dtype=np.float64)
    return Series(values[:, None], ["value"], ["value"], ["value"])


def fibonacci(spec: DatasetSpec) -> Series:
    """A Fibonacci recurrence K mod 1 and X = cos(2 pi K) + noise; inputs [K, X], target X.

    X alone cannot tell K from 1 - K, so its next value is ambiguous; with K it is a smooth
    function of the last two inputs, which is why the extra feature genuinely helps.
    """
    rng = np.random.default_rng(spec.seed)
    k = np.empty(_length(spec))
    k[:2] = rng.uniform(0, 1, size=2)
    for t in range(2, len(k)):
        k[t] = (k[t - 1] + k[t - 2]) % 1.0
    x = np.cos(2 * np.pi * k) + rng.normal(0, 0.05, size=len(k))
    return Series(np.column_stack([k, x]), ["K", "X"], ["K", "X"], ["X"])


def mackey_glass(
    spec: DatasetSpec,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    dt: float = 0.1,
    warmup: int = 500,
) -> Series:
    """The Mackey-Glass delay equation integrated with RK4, sampled every time unit after a warm-up.

    The seed sets the constant initial history, so different seeds give different trajectories.
    """
    rng = np.random.default_rng(spec.seed)
    per_unit, delay = round(1 / dt), round(tau / dt)
    steps = (warmup + _length(spec)) * per_unit
    x = np.empty(delay + steps + 1)
    x[: delay + 1] = rng.uniform(0.5, 1.5)

    def slope(now: float, lagged: float) -> float:
        return beta * lagged / (1 + lagged**power) - gamma * now

    for i in range(delay, delay + steps):
        # The delayed term is known on the grid; its midpoint value is interpolated.
        lag0, lag1 = x[i - delay], x[i - delay + 1]
        mid = (lag0 + lag1) / 2
        k1 = slope(x[i], lag0)
        k2 = slope(x[i] + dt * k1 / 2, mid)
        k3 = slope(x[i] + dt * k2 / 2, mid)
        k4 = slope(x[i] + dt * k3, lag1)
        x[i + 1] = x[i] + dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    values = x[delay + warmup * per_unit + per_unit :: per_unit]
    return Series(values[:, None], ["x"], ["x"], ["x"])


def adding(spec: DatasetSpec) -> Sequences:
    """The adding problem: values in [0, 1] and markers on one step in each half; target their sum."""
    rng = np.random.default_rng(spec.seed)
    n, steps = _length(spec), spec.seq_len if spec.seq_len is not None else DEFAULT_SEQ_LEN
    values = rng.uniform(0, 1, size=(n, steps))
    rows = np.arange(n)
    first = rng.integers(0, steps // 2, size=n)
    second = rng.integers(steps // 2, steps, size=n)
    markers = np.zeros((n, steps))
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = values[rows, first] + values[rows, second]
    return Sequences(x=x, y=y, columns=["value", "marker"], targets=["sum"])
