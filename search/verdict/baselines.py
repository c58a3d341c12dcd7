"""Naive forecasts and classifiers scored on the test split, in the model's own loss units.

Pure functions over a `Prepared` dataset (numpy only): the caller decides what to do with the losses.

The units match `stacktune.models.train.evaluate`:

* regression: ``F.mse_loss`` averaged over every output of every test sample (all horizon steps and all
  targets), in the standardised target units the model is trained in;
* classification: ``F.cross_entropy`` averaged over the test samples, in nats. The majority-class baseline is
  the constant predictor whose logits are the log training-label frequencies, so its loss is exactly what a model
  emitting those logits would score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the type only: importing the datasets package here is not needed at run time
    from stacktune.datasets.types import Prepared

# Training-label frequencies are clipped to this before the log, so that a class never seen in training costs
# -log(1e-6) ~ 13.8 nats per test sample instead of an infinite loss.
MIN_PROBABILITY = 1e-6


def skill(loss: float, baseline_loss: float) -> float | None:
    """1 - loss / baseline_loss: positive when the model beats the baseline, 0 when equal, negative when worse.

    None when baseline_loss is not a finite positive number or loss is not finite.
    """
    try:
        loss, baseline_loss = float(loss), float(baseline_loss)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(baseline_loss) and baseline_loss > 0 and math.isfinite(loss)):
        return None
    return 1.0 - loss / baseline_loss


def best_baseline(baselines: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The baseline with the lowest finite loss, or None when there is none."""
    finite = [b for b in baselines if _finite(b.get("loss"))]
    return min(finite, key=lambda b: float(b["loss"])) if finite else None


def naive_baselines(data: Prepared) -> list[dict[str, Any]]:
    """The naive predictors available for `data`, each scored on data.test.

    Forecasting (regression with `window` and `horizon` in meta): "persistence" when every target is also an input,
    and "seasonal_naive" as well when meta["season"] is set and fits in the window. Classification:
    "majority_class". Anything else (a regression set that is not a windowed series, an empty split): [].
    Each is a dict with "kind", "loss", "description" and figures of its own; losses are in the model's units.
    """
    if len(data.test) == 0:
        return []
    if data.task == "classification":
        found = majority_class(data)
        return [found] if found is not None else []
    if data.task != "regression" or not _is_windowed_series(data):
        return []
    found = [persistence(data)]
    season = data.meta.get("season")
    if season is not None:
        found.append(seasonal_naive(data, season=season))
    return [b for b in found if b is not None]


def pooled(per_origin: list[list[dict[str, Any]]], weights: list[int]) -> list[dict[str, Any]]:
    """The naive baselines over several data origins (`per_origin`: `naive_baselines` of each, `weights`: each one's
    test windows): each kind's loss is the mean over every origin's test windows, as the evaluation's runs are
    pooled, with each origin's own loss in `origin_losses`. A kind that cannot be scored at every origin is left
    out. One origin's list comes back as it is."""
    if len(per_origin) == 1:
        return per_origin[0]
    total = sum(weights)
    found = []
    for first in per_origin[0]:
        at = [next((b for b in scored if b["kind"] == first["kind"]), None) for scored in per_origin]
        if any(b is None or not _finite(b.get("loss")) for b in at):
            continue
        entry = {**first, "loss": sum(w * b["loss"] for w, b in zip(weights, at, strict=True)) / total}
        if all(_finite(b.get("accuracy")) for b in at):
            entry["accuracy"] = sum(w * b["accuracy"] for w, b in zip(weights, at, strict=True)) / total
        if "samples" in first:
            entry["samples"] = sum(int(b.get("samples") or 0) for b in at)
        entry["origin_losses"] = [float(b["loss"]) for b in at]
        found.append(entry)
    return found


def target_input_indices(meta: dict[str, Any]) -> list[int | None]:
    """For each target, its index among the input channels, or None when it is not an input.

    meta["target_in_inputs"] when present, else the targets' names matched within meta["columns"].
    """
    targets = list(meta.get("targets") or [])
    given = meta.get("target_in_inputs")
    if given is not None:
        return [None if i is None else int(i) for i in given]
    columns = list(meta.get("columns") or [])
    return [columns.index(t) if t in columns else None for t in targets]


def persistence(data: Prepared) -> dict[str, Any] | None:
    """Every future step predicted by the last observed value of its target; None when a target is not an input."""
    pred = _repeat_past(data, offsets=None)
    if pred is None:
        return None
    horizon, n_targets = _layout(data)
    return {
        "kind": "persistence",
        "loss": _mse(pred, data.test.y),
        "description": "Persistence: every future step repeats the target's last value in the window.",
        "samples": len(data.test),
        "horizon": horizon,
        "targets": n_targets,
    }


def seasonal_naive(data: Prepared, *, season: int) -> dict[str, Any] | None:
    """Step h predicted by the value `season` steps before it, repeating the window's last season.

    Step h (1-based) reads x[:, window - season + ((h - 1) % season), target]. None when the season does not fit in
    the window, is below 1, or a target is not an input.
    """
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        return None
    season = int(season)
    if season > data.test.x.shape[1]:
        return None
    horizon, n_targets = _layout(data)
    # How far back from the window's end each step reads: 0 is the last value, season - 1 the first of the season.
    offsets = [season - 1 - ((h - 1) % season) for h in range(1, horizon + 1)]
    pred = _repeat_past(data, offsets=offsets)
    if pred is None:
        return None
    return {
        "kind": "seasonal_naive",
        "loss": _mse(pred, data.test.y),
        "description": f"Seasonal naive: every future step repeats the value {season} steps earlier.",
        "season": season,
        "samples": len(data.test),
        "horizon": horizon,
        "targets": n_targets,
    }


def majority_class(data: Prepared) -> dict[str, Any] | None:
    """Predicts the most frequent training label; its loss is the cross-entropy of the training label frequencies.

    The loss is mean(-log p[y]) over the test samples with p the training frequencies clipped to MIN_PROBABILITY
    and renormalised: exactly F.cross_entropy of the constant logits log(p), as the trainer scores a model.
    """
    train_y = np.asarray(data.train.y).astype(np.int64).ravel()
    test_y = np.asarray(data.test.y).astype(np.int64).ravel()
    if train_y.size == 0 or test_y.size == 0:
        return None
    classes = max(int(data.output_size or 0), int(train_y.max()) + 1, int(test_y.max()) + 1)
    counts = np.bincount(train_y, minlength=classes).astype(np.float64)
    p = np.clip(counts / counts.sum(), MIN_PROBABILITY, None)
    p /= p.sum()
    majority = int(np.argmax(counts))
    labels = data.meta.get("labels")
    name = labels[majority] if isinstance(labels, (list, tuple)) and majority < len(labels) else majority
    share = float(counts[majority] / counts.sum())
    return {
        "kind": "majority_class",
        "loss": float(np.mean(-np.log(p[test_y]))),
        "accuracy": float(np.mean(test_y == majority)),
        "description": (
            f"Majority class: always predicts class {name!s} ({share:.0%} of the training labels), "
            "with the training label frequencies as its probabilities."
        ),
        "label": majority,
        "classes": classes,
        "samples": int(test_y.size),
    }


# ----------------------------------------------------------------------------- helpers


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _is_windowed_series(data: Prepared) -> bool:
    meta = data.meta or {}
    if meta.get("window") is None or meta.get("horizon") is None or not meta.get("targets"):
        return False
    x, y = data.test.x, data.test.y
    if x.ndim != 3 or y.ndim != 2 or x.shape[1] < 1:
        return False
    horizon, n_targets = _layout(data)
    return horizon >= 1 and y.shape[1] == horizon * n_targets


def _layout(data: Prepared) -> tuple[int, int]:
    return int(data.meta["horizon"]), len(data.meta["targets"])


def _scaling(meta: dict[str, Any], key: str, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The (mean, std) per column that standardised x or y, or None when the values are not scaled."""
    mean, std = meta.get(f"{key}_mean"), meta.get(f"{key}_std")
    if mean is None or std is None:
        return None
    mean, std = np.asarray(mean, dtype=np.float64).ravel(), np.asarray(std, dtype=np.float64).ravel()
    if mean.size < count or std.size < count:
        return None
    return mean, std


def _repeat_past(data: Prepared, *, offsets: Sequence[int] | None) -> np.ndarray | None:
    """Predictions (samples, horizon * targets), step-major, that copy past input values of each target.

    Step h reads the value `offsets[h - 1]` steps before the window's last observed one (0 throughout when offsets
    is None), mapped from the input channel's scaling into the target's. None when a target is not an input or the
    input and target scalings cannot be told apart.
    """
    meta = data.meta
    horizon, n_targets = _layout(data)
    indices = target_input_indices(meta)
    x = np.asarray(data.test.x, dtype=np.float64)
    channels = x.shape[2]
    if len(indices) != n_targets or any(i is None or not 0 <= i < channels for i in indices):
        return None
    x_scale, y_scale = _scaling(meta, "x", channels), _scaling(meta, "y", n_targets)
    if (x_scale is None) != (y_scale is None):
        return None  # one side scaled and the other not: the units cannot be matched
    offsets = [0] * horizon if offsets is None else list(offsets)
    samples = x.shape[0]
    # The last observed step of each window (sequences of different lengths end before the padding).
    last = np.full(samples, x.shape[1] - 1) if data.test.lengths is None else np.asarray(data.test.lengths) - 1
    if any(np.any(last - o < 0) for o in offsets):
        return None
    rows = np.arange(samples)
    pred = np.empty((samples, horizon, n_targets))
    for j, idx in enumerate(indices):
        for h, o in enumerate(offsets):
            pred[:, h, j] = x[rows, last - o, idx]
        if x_scale is not None:
            # back to raw units with the input's statistics, then into the target's (y_mean is tiled per step,
            # so its first n_targets entries are the targets' own)
            raw = pred[:, :, j] * x_scale[1][idx] + x_scale[0][idx]
            pred[:, :, j] = (raw - y_scale[0][j]) / y_scale[1][j]
    return pred.reshape(samples, horizon * n_targets)


def _mse(pred: np.ndarray, y: np.ndarray) -> float:
    """F.mse_loss's mean over every output of every sample, in float64."""
    return float(np.mean((np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))
