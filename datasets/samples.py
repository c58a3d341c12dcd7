"""Preparation of independent sequences: a seeded split, right-padding and train-only scaling.

Used for classification sets and for regression on i.i.d. samples (the adding problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .forecast import MAX_PREPARED_VALUES, standardise
from .types import Prepared, Split


@dataclass(frozen=True)
class Sequences:
    """Independent sequences, each (time, channels), with one label id or target row per sequence.

    `labels` (class names by id) marks a classification set; `test_from` marks the
    sequences from that index on as a fixed test set, such as a UEA/UCR TEST file.
    """

    x: Sequence[np.ndarray]
    y: np.ndarray
    columns: list[str]
    targets: list[str] | None = None
    labels: list[str] | None = None
    test_from: int | None = None


def _pick(pool: np.ndarray, count: int, strata: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Choose `count` of `pool` at random; with strata, every stratum keeps its share to within one."""
    order = rng.permutation(pool)
    if strata is not None:
        order = order[np.argsort(strata[order], kind="stable")]
    # Evenly spaced picks from the stratum-sorted order give proportional allocation.
    return np.sort(order[(np.arange(count) * len(order)) // max(count, 1)])


def split_indices(
    n: int,
    *,
    strata: np.ndarray | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    test_from: int | None,
    where: str,
) -> dict[str, np.ndarray]:
    """Return seeded train/val/test index arrays; val and a non-fixed test are stratified by `strata`."""
    rng = np.random.default_rng(seed)
    if test_from is None:
        test = _pick(np.arange(n), round(n * test_fraction), strata, rng)
        rest = np.setdiff1d(np.arange(n), test)
        val = _pick(rest, round(n * val_fraction), strata, rng)
    else:
        test = np.arange(test_from, n)
        rest = np.arange(test_from)
        val = _pick(rest, round(test_from * val_fraction), strata, rng)
    indices = {"train": np.setdiff1d(rest, val), "val": val, "test": test}
    empty = [split for split, idx in indices.items() if len(idx) == 0]
    if empty:
        raise DataError(
            f"{where}: {n} sequences leave the {empty[0]} split empty with val_fraction "
            f"{val_fraction} and test_fraction {test_fraction}; each split needs at least one"
        )
    return indices


def _pad(x: Sequence[np.ndarray], idx: np.ndarray, max_length: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Stack sequences into (samples, max_length, channels): real steps scaled, the rest zero."""
    out = np.zeros((len(idx), max_length, len(mean)), dtype=np.float32)
    for row, i in enumerate(idx):
        out[row, : len(x[i])] = (x[i] - mean) / std
    return out


def _check_padded_size(lengths: np.ndarray, channels: int, *, where: str) -> None:
    """Raise DataError when padding every sequence to the longest would make more than MAX_PREPARED_VALUES values."""
    longest = int(lengths.max(initial=0))
    padded = len(lengths) * longest * channels
    if padded > MAX_PREPARED_VALUES:
        raise DataError(
            f"{where}: {len(lengths)} sequences padded to {longest} steps of {channels} channels make {padded} values, "
            f"over the {MAX_PREPARED_VALUES} a prepared set may hold"
        )


def prepare_sequences(
    data: Sequences,
    *,
    name: str,
    source: str,
    where: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    scale: bool,
) -> Prepared:
    """Split, pad and scale independent sequences into a Prepared set.

    Padding is to the longest sequence of the whole set, so all splits share one time size;
    `lengths` is set on every split when lengths vary anywhere, else None.
    """
    classification = data.labels is not None
    n, channels = len(data.x), len(data.columns)
    lengths = np.array([len(seq) for seq in data.x], dtype=np.int64)
    _check_padded_size(lengths, channels, where=where)
    indices = split_indices(
        n,
        strata=data.y if classification else None,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        test_from=data.test_from,
        where=where,
    )
    meta: dict = {
        "source": source,
        "length": n,
        "columns": list(data.columns),
        "scaled": scale,
        "max_length": int(lengths.max()),
    }
    if scale:
        # Statistics over real time steps only, so padding never dilutes them.
        x_mean, x_std = standardise(np.concatenate([data.x[i] for i in indices["train"]]))
        meta.update(x_mean=x_mean.tolist(), x_std=x_std.tolist())
    else:
        x_mean, x_std = np.zeros(channels), np.ones(channels)
        meta.update(x_mean=None, x_std=None)

    if classification:
        y = data.y.astype(np.int64)
        meta["labels"] = list(data.labels)
    else:
        y = data.y.astype(np.float64).reshape(n, -1)
        meta["targets"] = list(data.targets or [])
        if scale:
            y_mean, y_std = standardise(y[indices["train"]])
            y = (y - y_mean) / y_std
            meta.update(y_mean=y_mean.tolist(), y_std=y_std.tolist())
        else:
            meta.update(y_mean=None, y_std=None)
        y = y.astype(np.float32)

    varying = lengths.min() != lengths.max()
    splits = {
        split: Split(
            x=_pad(data.x, idx, int(lengths.max()), x_mean, x_std), y=y[idx], lengths=lengths[idx] if varying else None
        )
        for split, idx in indices.items()
    }
    meta["sizes"] = {split: len(s) for split, s in splits.items()}
    return Prepared(
        name=name,
        task="classification" if classification else "regression",
        input_size=channels,
        output_size=len(data.labels) if classification else y.shape[1],
        meta=meta,
        **splits,
    )
