"""stacktune's search: one tuned Optuna study per depth of a stacked LSTM, run on Ray Tune, tracked in MLflow,
and a verdict on which depth is better.

The public API is imported lazily, so `import stacktune.search` stays cheap:

    from stacktune.search import load_spec, load_data, match_widths, run_search, compare
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_API = {
    "SearchSpec": ".spec.schema",
    "TrainConfig": ".spec.schema",
    "load_spec": ".spec.loading",
    "load_data": ".spec.loading",
    "match_widths": ".spec.convert",
    "run_search": ".pipeline",
    "train": ".interfaces.train:run_train",
    "run_train": ".interfaces.train",
    "compare": ".verdict.stats",
    "Verdict": ".verdict.stats",
    "Comparison": ".verdict.comparison",
    "Progress": ".progress",
    "StacktuneError": ".errors",
    "ConfigError": ".errors",
    "UnreachableError": ".errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = _API[name].partition(":")
    value = getattr(importlib.import_module(module, __name__), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
