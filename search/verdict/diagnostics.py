"""Warnings about a finished search: each names what it saw and the spec field that would fix it.

Pure functions over plain values (numpy only). Every warning is a dict
``{"code": str, "sentence": str, "figures": dict, "depth": int | None}``: ``sentence`` is one plain English
sentence naming the figures and the spec field to change, ``figures`` holds plain JSON values only (non-finite
numbers become None) and ``depth`` is the depth it is about, or None when it is about the whole search.
A function per code returns its warning(s); `collect` runs every check its inputs allow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .wording import join

if TYPE_CHECKING:  # the type only
    from stacktune.datasets.types import Prepared

Diagnostic = dict[str, Any]

LATE_EPOCH_FRACTION = 0.9  # best epoch beyond 90% of the epochs: the last 10%
EDGE_FRACTION = 0.05  # within 5% of a range's edge
MIN_EDGE_CHOICES = 3  # a list of choices needs this many for its smallest or largest to count as an edge
SHIFT_RATIO = 5.0  # test loss at least this many times the validation loss
MIN_TEST_SAMPLES = 50
STILL_IMPROVING = 0.02  # expected best still falling by more than 2% over the last quarter of the trials

CODES = (
    "best_epoch_at_end",
    "at_range_bound",
    "distribution_shift",
    "too_few_test_windows",
    "budget_still_improving",
    "too_few_seeds",
)


# ----------------------------------------------------------------------------- best_epoch_at_end


def best_epoch_at_end(*, depth: int, val_curve: Sequence[float], max_epochs: int) -> Diagnostic | None:
    """Warn when the best trial's lowest validation loss came in the last 10% of the maximum epochs.

    The best epoch is the 1-based position of the lowest finite value of `val_curve`; the warning is raised when
    best_epoch > 0.9 * max_epochs (epoch 18 of 20 is not raised, epoch 19 is).
    """
    values = _floats(val_curve)
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    if not finite or not _positive_int(max_epochs):
        return None
    best = min(finite, key=lambda i: values[i]) + 1
    # in integers, so that exactly 90% is not raised by a rounding error
    if 10 * best <= 9 * max_epochs:
        return None
    return _warning(
        "best_epoch_at_end",
        f"Depth {depth}'s best trial had its lowest validation loss at epoch {best} of {max_epochs}: "
        "give it more epochs (train.epochs).",
        {
            "best_epoch": best,
            "max_epochs": int(max_epochs),
            "epochs_run": len(values),
            "best_val_loss": values[best - 1],
        },
        depth,
    )


# ----------------------------------------------------------------------------- at_range_bound


def at_range_bound(*, depth: int, best_params: Mapping[str, Any], ranges: Mapping[str, Any]) -> list[Diagnostic]:
    """Warn for each best value within 5% of its search range's edge (on a log scale for log ranges).

    `ranges` maps a parameter name to ``(low, high, log)`` (or a dict with those keys) for a searched range, or to a
    list of choices: with at least 3 choices, the smallest or the largest is at the edge. Parameters without a range
    (fixed values) are skipped, and so is a lower bound of 0 or less: no search can go below it (dropout 0).
    """
    found = []
    for name, spec in ranges.items():
        if name not in best_params:
            continue
        value = best_params[name]
        if not _is_number(value):
            continue
        field = f"space.{re.sub(r'_[0-9]+$', '', name)}"
        if _is_choices(spec):
            warning = _choice_edge(depth, name, value, spec, field)
        else:
            warning = _range_edge(depth, name, value, spec, field)
        if warning is not None:
            found.append(warning)
    return found


def _choice_edge(depth: int, name: str, value: Any, spec: Sequence[Any], field: str) -> Diagnostic | None:
    """The at_range_bound warning for a best value that is the largest (or smallest, above 0) of 3+ choices."""
    choices = sorted(c for c in spec if _is_number(c))
    if len(choices) < MIN_EDGE_CHOICES:
        return None
    low, high = choices[0], choices[-1]
    if value == high:
        edge, more = "upper", "larger"
    elif value == low and low > 0:
        edge, more = "lower", "smaller"
    else:
        return None
    shown = ", ".join(_fmt(c) for c in choices)
    return _warning(
        "at_range_bound",
        f"Depth {depth}'s best {name}, {_fmt(value)}, is the {'largest' if edge == 'upper' else 'smallest'}"
        f" of its choices [{shown}]: widen the choices with {more} values ({field}).",
        {"param": name, "value": value, "choices": choices, "edge": edge, "field": field},
        depth,
    )


def _range_edge(depth: int, name: str, value: Any, spec: Any, field: str) -> Diagnostic | None:
    """The at_range_bound warning for a best value within 5% of a searched range's edge (log scale for log ranges)."""
    bounds = _range(spec)
    if bounds is None:
        return None
    low, high, log = bounds
    value = float(value)
    if log and (low <= 0 or value <= 0):
        return None
    position = (
        (math.log(value) - math.log(low)) / (math.log(high) - math.log(low)) if log else (value - low) / (high - low)
    )
    if position >= 1 - EDGE_FRACTION:
        edge, where = "upper", "above"
    elif position <= EDGE_FRACTION and low > 0:
        edge, where = "lower", "below"
    else:
        return None
    scale = ", log scale" if log else ""
    return _warning(
        "at_range_bound",
        f"Depth {depth}'s best {name}, {_fmt(value)}, lies at the {edge} edge of its range "
        f"[{_fmt(low)}, {_fmt(high)}]{scale}: widen the range {where} {_fmt(high if edge == 'upper' else low)}"
        f" ({field}).",
        {
            "param": name,
            "value": value,
            "low": low,
            "high": high,
            "log": bool(log),
            "position": position,
            "edge": edge,
            "field": field,
        },
        depth,
    )


# ----------------------------------------------------------------------------- distribution_shift


def target_ranges(data: Prepared) -> list[dict[str, Any]]:
    """Per target of a regression set: the test targets' mean against the training targets' min and max.

    Forecasting targets are pooled over the horizon steps (y is step-major); other regression sets take each output
    column as a target. Figures are in raw (unscaled) units where the scaling is known. "positive" is True when every
    training and test target value is positive in raw units, None when that cannot be told. Classification: [].
    """
    if data.task != "regression" or len(data.train) == 0 or len(data.test) == 0:
        return []
    meta = data.meta or {}
    train, test = np.asarray(data.train.y, np.float64), np.asarray(data.test.y, np.float64)
    train, test = train.reshape(len(train), -1), test.reshape(len(test), -1)
    outputs = train.shape[1]
    raw = _raw_targets(meta, train, test)
    if raw is not None:  # the check is the same in any units; the sentence reads better in the data's own
        train, test = raw
    names = list(meta.get("targets") or [])
    horizon = meta.get("horizon") or 1
    if not names or outputs != horizon * len(names):
        names, horizon = [f"output {j}" for j in range(outputs)], 1
    n = len(names)
    found = []
    for j, name in enumerate(names):
        found.append(
            {
                "target": str(name),
                "test_mean": float(test.reshape(len(test), horizon, n)[:, :, j].mean()),
                "train_min": float(train.reshape(len(train), horizon, n)[:, :, j].min()),
                "train_max": float(train.reshape(len(train), horizon, n)[:, :, j].max()),
                "positive": None if raw is None else bool(np.all(raw[0][:, j::n] > 0) and np.all(raw[1][:, j::n] > 0)),
            }
        )
    return found


def distribution_shift(
    *,
    val_loss_by_depth: Mapping[int, float] | None = None,
    test_loss_by_depth: Mapping[int, float] | None = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    positive: bool | None = None,
) -> list[Diagnostic]:
    """Warn when the test split looks unlike the data the model was tuned on.

    Two checks, each one warning at most: the mean test loss is at least 5x the mean validation loss of the same
    configurations (per depth; depth is set when a single depth does it), and a target's test mean lies outside its
    training range (`targets` as `target_ranges` returns them). Both point to `dataset.transform: diff`, or
    `log_diff` when the series is positive (`positive`, else the targets' own "positive").
    """
    if targets:
        positive = positive if positive is not None else _all_positive(targets)
    transform = "log_diff" if positive else "diff"
    hint = f"set dataset.transform: {transform}"
    checks = (
        _test_over_val(val_loss_by_depth or {}, test_loss_by_depth or {}, hint, transform),
        _test_mean_outside(targets or [], hint, transform),
    )
    return [warning for warning in checks if warning is not None]


def _test_over_val(
    val_loss_by_depth: Mapping[int, float], test_loss_by_depth: Mapping[int, float], hint: str, transform: str
) -> Diagnostic | None:
    """The distribution_shift warning for depths whose mean test loss is at least 5x their mean validation loss."""
    ratios = []
    for depth, val in val_loss_by_depth.items():
        test = test_loss_by_depth.get(depth)
        if not (_is_number(val) and _is_number(test)):
            continue
        val, test = float(val), float(test)
        if not (math.isfinite(val) and math.isfinite(test) and val > 0):
            continue
        if test >= SHIFT_RATIO * val:
            ratios.append({"depth": int(depth), "val_loss": val, "test_loss": test, "ratio": test / val})
    if not ratios:
        return None
    ratios.sort(key=lambda r: r["depth"])
    if len(ratios) == 1:
        r = ratios[0]
        sentence = (
            f"Depth {r['depth']}'s mean test loss, {_fmt(r['test_loss'])}, is {r['ratio']:.1f}x its mean "
            f"validation loss, {_fmt(r['val_loss'])}, so the test period looks unlike the training data: {hint}."
        )
    else:
        low, high = min(r["ratio"] for r in ratios), max(r["ratio"] for r in ratios)
        sentence = (
            f"The mean test loss is {low:.1f}x to {high:.1f}x the mean validation loss at depths "
            f"{join([str(r['depth']) for r in ratios])}, so the test period looks unlike the training data: "
            f"{hint}."
        )
    return _warning(
        "distribution_shift",
        sentence,
        {"check": "test_over_val", "threshold": SHIFT_RATIO, "depths": ratios, "transform": transform},
        ratios[0]["depth"] if len(ratios) == 1 else None,
    )


def _test_mean_outside(targets: Sequence[Mapping[str, Any]], hint: str, transform: str) -> Diagnostic | None:
    """The distribution_shift warning for targets whose test mean lies outside their training range."""
    outside = [
        dict(t)
        for t in targets
        if _is_number(t.get("test_mean"))
        and _is_number(t.get("train_min"))
        and _is_number(t.get("train_max"))
        and not float(t["train_min"]) <= float(t["test_mean"]) <= float(t["train_max"])
    ]
    if not outside:
        return None
    parts = [
        f"{t['target']}, {_fmt(t['test_mean'])}, lies {'above' if t['test_mean'] > t['train_max'] else 'below'}"
        f" its training range [{_fmt(t['train_min'])}, {_fmt(t['train_max'])}]"
        for t in outside
    ]
    return _warning(
        "distribution_shift",
        f"The test mean of {join(parts)}, so the series drifts beyond what training saw: {hint}.",
        {"check": "test_mean_outside_train_range", "targets": outside, "transform": transform},
        None,
    )


# ----------------------------------------------------------------------------- too_few_test_windows


def too_few_test_windows(*, test_samples: int, origins: int = 1) -> Diagnostic | None:
    """Warn when the test split has fewer than 50 samples (windows for a forecast, sequences otherwise); with several
    data origins, `test_samples` counts them over every origin's test block."""
    if not _is_number(test_samples) or test_samples >= MIN_TEST_SAMPLES:
        return None
    n = int(test_samples)
    where = "The test split holds" if origins <= 1 else f"The test blocks of the {origins} origins hold"
    return _warning(
        "too_few_test_windows",
        f"{where} only {n} sample{'s' if n != 1 else ''}, fewer than {MIN_TEST_SAMPLES}, so its losses "
        "are noisy: give it more data (dataset.test_fraction, or a longer series).",
        {"test_samples": n, "minimum": MIN_TEST_SAMPLES, **({"origins": origins} if origins > 1 else {})},
        None,
    )


# ----------------------------------------------------------------------------- budget_still_improving


def budget_still_improving(*, depth: int, expected_best: Sequence[float]) -> Diagnostic | None:
    """Warn when a depth's expected best validation loss still falls by more than 2% over its last quarter of trials.

    `expected_best[i]` is the expected best of i + 1 trials, for N >= 4 trials. The drop is measured from
    n = floor(3N/4) trials (index i_3q = n - 1) to N: (eb[i_3q] - eb[-1]) / |eb[i_3q]| > 0.02 raises.
    """
    values = _floats(expected_best)
    total = len(values)
    if total < 4:
        return None
    at = (3 * total) // 4
    start, end = values[at - 1], values[-1]
    if not (math.isfinite(start) and math.isfinite(end)) or start == 0:
        return None
    drop = (start - end) / abs(start)
    if not drop > STILL_IMPROVING:
        return None
    return _warning(
        "budget_still_improving",
        f"Depth {depth}'s expected best validation loss still falls {drop:.1%} from {_fmt(start)} at {at} trials to "
        f"{_fmt(end)} at {total}: give it more trials (trials_per_depth).",
        {"trials": total, "from_trials": at, "from_loss": start, "to_loss": end, "drop": drop},
        depth,
    )


# ----------------------------------------------------------------------------- too_few_seeds


def too_few_seeds(*, verdict: Mapping[str, Any], seeds: int | None = None) -> Diagnostic | None:
    """Warn when the seeds cannot decide a comparison: the verdict is undecided or some pair is not decidable.

    `verdict` is `Verdict.to_dict()` (or any dict with "undecided", "needed_seeds" and "pairs" of {"a", "b",
    "decidable"}); `seeds` is the seeds per depth, else the fewest runs a pair saw ("n_a"/"n_b") when given.
    """
    if not verdict:
        return None
    pairs = [p for p in verdict.get("pairs") or [] if not p.get("decidable", True)]
    undecided = bool(verdict.get("undecided"))
    if not (undecided or pairs):
        return None
    if seeds is None:
        counts = [int(p[k]) for p in verdict.get("pairs") or [] for k in ("n_a", "n_b") if _is_number(p.get(k))]
        seeds = min(counts) if counts else None
    needed = verdict.get("needed_seeds")
    needed = int(needed) if _is_number(needed) else None
    who = f"{seeds} seed{'s' if seeds != 1 else ''}" if seeds is not None else "The seeds"
    what = join([f"depth {p['a']} against depth {p['b']}" for p in pairs]) if pairs else "the depths' comparison"
    if needed is not None:
        sentence = f"{who} cannot decide {what}; at least {needed} are needed (evaluation.seeds)."
    else:
        sentence = f"{who} cannot decide {what}; raise evaluation.seeds."
    return _warning(
        "too_few_seeds",
        sentence,
        {
            "seeds": seeds,
            "needed_seeds": needed,
            "undecided": undecided,
            "pairs": [{"a": int(p["a"]), "b": int(p["b"])} for p in pairs],
        },
        None,
    )


# ----------------------------------------------------------------------------- loses to naive


def every_depth_loses(test_losses_by_depth: Mapping[int, float], baseline_loss: float) -> bool:
    """True when there is at least one depth and none has a test loss below the baseline's (a tie loses).

    A non-finite test loss (a diverged run) loses; a baseline loss that is not finite decides nothing (False).
    """
    if not test_losses_by_depth or not _is_number(baseline_loss) or not math.isfinite(float(baseline_loss)):
        return False
    baseline = float(baseline_loss)
    for loss in test_losses_by_depth.values():
        if _is_number(loss) and math.isfinite(float(loss)) and float(loss) < baseline:
            return False
    return True


# ----------------------------------------------------------------------------- all of them


def collect(
    *,
    val_curves: Mapping[int, Sequence[float]] | None = None,
    max_epochs: int | None = None,
    best_params: Mapping[int, Mapping[str, Any]] | None = None,
    ranges: Mapping[str, Any] | None = None,
    ranges_by_depth: Mapping[int, Mapping[str, Any]] | None = None,
    val_loss_by_depth: Mapping[int, float] | None = None,
    test_loss_by_depth: Mapping[int, float] | None = None,
    data: Prepared | None = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    test_samples: int | None = None,
    expected_best: Mapping[int, Sequence[float]] | None = None,
    verdict: Mapping[str, Any] | None = None,
    seeds: int | None = None,
    origins: int = 1,
) -> list[Diagnostic]:
    """Every warning the given inputs allow, in the order of CODES and then by depth.

    Per depth: `val_curves` (the best trial's val loss per epoch, with `max_epochs`), `best_params` (with `ranges`,
    shared by the depths, or `ranges_by_depth`), `val_loss_by_depth`/`test_loss_by_depth` (mean over the
    evaluation runs) and `expected_best`. `data` supplies `targets` (see `target_ranges`) and `test_samples` when
    those are not given. `verdict` (with `seeds`) is the comparison's verdict dict.
    """
    found: list[Diagnostic] = []
    if val_curves and max_epochs is not None:
        for depth in sorted(val_curves):
            found.append(best_epoch_at_end(depth=depth, val_curve=val_curves[depth], max_epochs=max_epochs))
    for depth in sorted(best_params or {}):
        depth_ranges = (ranges_by_depth or {}).get(depth, ranges)
        if depth_ranges:
            found.extend(at_range_bound(depth=depth, best_params=best_params[depth], ranges=depth_ranges))
    if targets is None and data is not None:
        targets = target_ranges(data)
    found.extend(
        distribution_shift(val_loss_by_depth=val_loss_by_depth, test_loss_by_depth=test_loss_by_depth, targets=targets)
    )
    if test_samples is None and data is not None:
        test_samples = len(data.test)
    if test_samples is not None:
        found.append(too_few_test_windows(test_samples=test_samples, origins=origins))
    for depth in sorted(expected_best or {}):
        found.append(budget_still_improving(depth=depth, expected_best=expected_best[depth]))
    if verdict:
        found.append(too_few_seeds(verdict=verdict, seeds=seeds))
    return [w for w in found if w is not None]


# ----------------------------------------------------------------------------- helpers


def at_origin(warning: Diagnostic, number: int, of: int) -> Diagnostic:
    """A warning found on one data origin's figures, saying which: "At origin 2 of 4, ..." and `figures.origin`."""
    sentence = warning["sentence"]
    return {
        **warning,
        "sentence": f"At origin {number} of {of}, {sentence[:1].lower()}{sentence[1:]}",
        "figures": {**warning["figures"], "origin": int(number)},
    }


def _warning(code: str, sentence: str, figures: dict[str, Any], depth: int | None) -> Diagnostic:
    return {
        "code": code,
        "sentence": sentence,
        "figures": _json(figures),
        "depth": None if depth is None else int(depth),
    }


def _json(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def _floats(values: Sequence[Any] | None) -> list[float]:
    return [float(v) if _is_number(v) else math.nan for v in values or []]


def _is_choices(spec: Any) -> bool:
    """A list of choices, as opposed to a (low, high[, log]) tuple or {low, high, log} range.

    A JSON list [low, high, true/false] reads as a range as well.
    """
    if isinstance(spec, (set, frozenset)):
        return True
    if isinstance(spec, list):
        return not (len(spec) == 3 and isinstance(spec[2], (bool, np.bool_)))
    return False


def _range(spec: Any) -> tuple[float, float, bool] | None:
    if isinstance(spec, Mapping):
        low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
        low, high, log = spec[0], spec[1], spec[2] if len(spec) == 3 else False
    else:
        return None
    if not (_is_number(low) and _is_number(high)):
        return None
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        return None
    return low, high, bool(log)


def _raw_targets(meta: Mapping[str, Any], train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Train and test targets in raw units, or None when they are scaled with statistics meta lacks."""
    mean, std = meta.get("y_mean"), meta.get("y_std")
    if mean is None or std is None:
        return None if meta.get("scaled") else (train, test)
    mean, std = np.asarray(mean, np.float64).ravel(), np.asarray(std, np.float64).ravel()
    if mean.size != train.shape[1] or std.size != train.shape[1]:
        return None
    return train * std + mean, test * std + mean


def _all_positive(targets: Sequence[Mapping[str, Any]]) -> bool:
    return bool(targets) and all(t.get("positive") is True for t in targets)


def _fmt(value: Any) -> str:
    """A number as people read it: 0.0001, 0.74, 128, 1.2e+03 only when very large or small."""
    if not _is_number(value):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"
