"""Tolerant readers of comparison.json as plain JSON, shared by the report and its plots.

`stacktune report` rebuilds a report from the comparison.json an earlier (or later) version wrote, so every
reader accepts a missing key, a null or a non-finite number and returns something the writers can show.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def values(seq: Any) -> list[float]:
    """The finite numbers of a list (None, NaN and non-numbers dropped)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) for v in seq if finite(v)]


def series(seq: Any) -> list[float]:
    """A list as floats with NaN standing in for missing entries (keeps positions for plotting)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) if finite(v) else float("nan") for v in seq]


def entries(comparison: dict) -> list[dict]:
    return sorted(
        (d for d in comparison.get("depths") or [] if isinstance(d, dict) and "depth" in d),
        key=lambda d: d["depth"],
    )


def task(comparison: dict) -> str:
    return "classification" if comparison.get("task") == "classification" else "regression"


def loss_unit(comparison: dict) -> str:
    return "cross-entropy" if task(comparison) == "classification" else "MSE, standardised"


def confidence(comparison: dict) -> float:
    evaluation = comparison.get("evaluation") or {}
    conf = evaluation.get("confidence") if isinstance(evaluation, dict) else None
    return float(conf) if finite(conf) and 0 < conf < 1 else 0.95


def level(comparison: dict) -> str:
    return f"{confidence(comparison) * 100:g}%"


def has_test(entry: dict) -> bool:
    return finite(entry.get("test_loss_mean"))


def fixed(entry: dict) -> dict | None:
    fixed = entry.get("fixed")
    return fixed if isinstance(fixed, dict) and finite(fixed.get("test_loss_mean")) else None


def verdict(comparison: dict, key: str = "verdict") -> dict | None:
    verdict = comparison.get(key)
    if not isinstance(verdict, dict) or not (verdict.get("winner") is not None or verdict.get("tied")):
        return None
    return verdict


def param_label(name: str) -> str:
    if name.startswith("units_") and name[6:].isdigit():
        return f"units, layer {int(name[6:]) + 1}"
    return {
        "lr": "learning rate",
        "dropout": "dropout",
        "weight_decay": "weight decay",
        "batch_size": "batch size",
    }.get(name, name.replace("_", " "))
