"""The evaluation's data origins: several train/validation/test splits of one prepared set, so that a verdict rests on
more than one test period (or one draw of the validation set).

A forecast gets rolling origins over an expanding window. The search's own test segment is cut into `count` blocks
of consecutive rows; origin j's cutoff is the start of block j. Its test windows are those whose targets lie in block
j, their inputs taken from the rows just before, as a forecaster at the cutoff would have them; its validation block
is as long as the search's and ends at the cutoff; it trains on every row before that. Origin 1 therefore trains
and validates exactly as the search did, later origins train on more of the past, and no origin's test rows were
ever seen by the search. Every origin keeps the search's scaling, fitted on the search's training rows, which all
come before any origin's validation and test rows.

Independent sequences (classification and sequence regression) get repeated re-splits instead: origin 1 is the
search's split, origin j draws validation anew (stratified by class) from the search's training and validation
sequences, with its own seed, and is scaled again on its own training sequences. The test split stays fixed.

Each origin is a Prepared set like the search's, with `meta["origin"]` saying what it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DataError
from .forecast import make_windows, standardise
from .samples import _pick
from .types import Prepared, Split

# The most origins a search may evaluate on.
MAX_ORIGINS = 12


def evaluation_origins(data: Prepared, count: int, *, seed: int = 0, where: str = "the dataset") -> list[Prepared]:
    """The `count` origins the evaluation retrains and scores on, in time order (see the module's docstring).

    One origin is the prepared set itself, unchanged. Raises DataError (one line, naming `where`) when the set cannot
    be cut that many ways: a test block shorter than the forecast horizon, or a re-split with an empty split."""
    if count < 1 or count > MAX_ORIGINS:
        raise DataError(f"{where}: evaluation.origins must be 1 to {MAX_ORIGINS}, got {count}")
    if count == 1:
        return [data]
    if data.rows is not None:
        return _rolling(data, count, where=where)
    return _resplits(data, count, seed=seed, where=where)


def block_bounds(test_start: int, rows: int, count: int) -> list[tuple[int, int]]:
    """The [start, end) rows of each origin's test block: the test segment cut into `count` nearly equal parts."""
    size = rows - test_start
    edges = [test_start + (size * j) // count for j in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _rolling(data: Prepared, count: int, *, where: str) -> list[Prepared]:
    meta = data.meta
    x, y = data.rows
    window, horizon = int(meta["window"]), int(meta["horizon"])
    segments = meta["segments"]
    val_start, test_start = segments["val"]
    rows = len(x)
    n_val = test_start - val_start
    blocks = block_bounds(test_start, rows, count)
    shortest = min(end - start for start, end in blocks)
    if shortest < horizon:
        raise DataError(
            f"{where}: evaluation.origins {count} cuts the {rows - test_start} test rows into blocks of {shortest}, "
            f"shorter than the horizon {horizon}; use fewer origins or a larger dataset.test_fraction"
        )
    origins, shape = [], {"window": window, "horizon": horizon}
    for number, (start, end) in enumerate(blocks, start=1):
        cut = start - n_val
        splits = {
            "train": Split(*make_windows(x[:cut], y[:cut], **shape)),
            "val": Split(*make_windows(x[cut:start], y[cut:start], **shape)),
            # the block's targets, each window's inputs the rows just before them (some before the cutoff)
            "test": Split(*make_windows(x[start - window : end], y[start - window : end], **shape)),
        }
        origin = {"number": number, "of": count, "kind": "rolling", "cutoff": start, "test_rows": [start, end]}
        origins.append(
            _with(data, splits, origin, segments={"train": [0, cut], "val": [cut, start], "test": [start, end]})
        )
    return origins


def _resplits(data: Prepared, count: int, *, seed: int, where: str) -> list[Prepared]:
    classification = data.task == "classification"
    pool = _concat(data.train, data.val)
    n, n_val = len(pool), len(data.val)
    strata = np.asarray(pool.y) if classification else None
    origins = [_with(data, {"train": data.train, "val": data.val, "test": data.test}, _resplit(1, count, seed))]
    for number in range(2, count + 1):
        drawn = seed + number - 1
        val = _pick(np.arange(n), n_val, strata, np.random.default_rng(drawn))
        train = np.setdiff1d(np.arange(n), val)
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"{where}: {n} training and validation sequences cannot be re-split for the origins")
        splits = {"train": _take(pool, train), "val": _take(pool, val), "test": data.test}
        splits, scaling = _rescaled(splits, data.meta)
        origins.append(_with(data, splits, _resplit(number, count, drawn), **scaling))
    return origins


def _resplit(number: int, count: int, seed: int) -> dict:
    return {"number": number, "of": count, "kind": "resplit", "seed": seed}


def _concat(a: Split, b: Split) -> Split:
    lengths = None if a.lengths is None else np.concatenate([a.lengths, b.lengths])
    return Split(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), lengths)


def _take(split: Split, idx: np.ndarray) -> Split:
    return Split(split.x[idx], split.y[idx], None if split.lengths is None else split.lengths[idx])


def _real_steps(split: Split) -> np.ndarray:
    """(samples, time) True where a step is real, not padding."""
    steps = np.arange(split.x.shape[1])
    if split.lengths is None:
        return np.ones(split.x.shape[:2], dtype=bool)
    return steps[None, :] < np.asarray(split.lengths)[:, None]


def _rescaled(splits: dict[str, Split], meta: dict) -> tuple[dict[str, Split], dict]:
    """The splits' inputs scaled again on the origin's own training sequences (the search's scaling undone first),
    and the new statistics; targets keep the search's scaling, so that every origin's losses are in the same units."""
    if meta.get("x_mean") is None:
        return splits, {}
    mean, std = np.asarray(meta["x_mean"]), np.asarray(meta["x_std"])
    raw = {name: s.x.astype(np.float64) * std + mean for name, s in splits.items()}
    train_mask = _real_steps(splits["train"])
    new_mean, new_std = standardise(raw["train"][train_mask])
    found = {}
    for name, split in splits.items():
        x = np.where(_real_steps(split)[:, :, None], (raw[name] - new_mean) / new_std, 0.0).astype(np.float32)
        found[name] = Split(x, split.y, split.lengths)
    return found, {"x_mean": new_mean.tolist(), "x_std": new_std.tolist()}


def _with(data: Prepared, splits: dict[str, Split], origin: dict, *, segments: dict | None = None, **meta_) -> Prepared:
    meta = {**data.meta, **meta_, "origin": origin, "sizes": {name: len(s) for name, s in splits.items()}}
    if segments is not None:
        meta["segments"] = segments
        meta["transform_anchor"] = None  # the anchors are the search's segments'; an origin's are not kept
    return dataclasses.replace(data, meta=meta, rows=None, **splits)
