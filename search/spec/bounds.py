"""The limits of every size a spec or config sets, and how a value that breaks one is worded.

Constrained types carry their bounds into pydantic's checks and the JSON Schema; `worded` turns pydantic's errors
for a broken bound into one sentence in the field's own terms (the per-field wordings below).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError

from stacktune.datasets.errors import shown

# Upper bounds on every size a spec or config sets, so that a typo cannot ask for hours of work or more memory
# than a machine has; the dataset's own (window, length, ...) are in stacktune.datasets.spec.
MAX_UNITS = 4096  # units of one layer
MAX_DEPTH = 32  # layers of a stack
MAX_CHOICES = 256  # values in a list of choices
MAX_PARAMS = 1_000_000_000  # weights of a stack for `units: {params: N}`
MAX_EPOCHS = 100_000
MAX_TRIALS = 100_000  # trials of one depth
MAX_REPLICATES = 20  # independent searches of one depth
MAX_BATCH_SIZE = 65_536
MAX_SEEDS = 1000  # seeds of the evaluation
MAX_TOP_K = 100
MAX_ORIGINS = 12  # data origins of the evaluation (datasets.origins.MAX_ORIGINS)
MAX_FAILURES = 100  # restarts of a trial whose worker died
MAX_CONCURRENT = 10_000  # trials at once
MAX_BRACKETS = 10  # hyperband brackets
MAX_CPUS_PER_TRIAL = 1024.0
MAX_GPUS_PER_TRIAL = 64.0
MAX_BUDGET_SECONDS = 10_000_000.0  # training seconds of one depth
MAX_URL = 4096  # characters of a storage URL
# A training run's seed seeds NumPy, which takes seeds below 2**32; a spec's seed is multiplied by the searches'
# SEED_OFFSET (1000) and a depth or an evaluation seed added, which must stay below that too.
MAX_TRAIN_SEED = 2**32 - 1
MAX_SPEC_SEED = 4_000_000


def finite_number(value: float | None) -> float | None:
    """Rejects NaN and infinity, which pydantic's bounds let through where a field has none."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


# Constrained integers: pydantic checks the bounds and writes them into the JSON Schema; `worded` says what a
# broken one means in the field's own words.
Width = Annotated[int, Field(ge=1, le=MAX_UNITS)]  # units of one layer
Depth = Annotated[int, Field(ge=1, le=MAX_DEPTH)]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
# Lists of choices of them, as a union's list form (a field of its own sets its length in its Field).
WidthChoices = Annotated[list[Width], Field(min_length=1, max_length=MAX_CHOICES)]
BatchSizeChoices = Annotated[list[BatchSize], Field(min_length=1, max_length=MAX_CHOICES)]

_BROKEN_BOUNDS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number", "too_short", "too_long"}
)


def worded(word: Callable[[Any, list[dict]], str | None]) -> Callable[[Any, Any], Any]:
    """A wrap validator that words what a field's constraints refuse: when every problem pydantic found is a broken
    bound (a number out of range, a list too short or too long), the one ValueError `word(value, errors)`; else, or
    when `word` gives None, pydantic's own errors. A union member that the value is not even of the type of (its
    model_type, list_type, ... error at the member's root) is left out: the value was meant for another member."""

    def reword(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = [
                e
                for e in exc.errors()
                if not (len(e["loc"]) == 1 and isinstance(e["loc"][0], str) and e["type"] not in _BROKEN_BOUNDS)
            ]
            message = word(value, errors) if errors and all(e["type"] in _BROKEN_BOUNDS for e in errors) else None
            if message is None:
                raise
            raise ValueError(message) from None

    return reword


def _first_int(errors: list[dict], *kinds: str) -> int | None:
    """The value of the first of `errors` of one of `kinds`, as the integer pydantic read it as."""
    return next((int(e["input"]) for e in errors if e["type"] in kinds), None)


def layer_widths(value: Any, errors: list[dict]) -> str | None:
    """The widths of a stack, first to last: the first that is out of range."""
    first = next((e for e in errors if e["type"] in ("greater_than_equal", "less_than_equal")), None)
    if first is None:
        return None
    if first["type"] == "greater_than_equal":
        return f"every layer needs at least 1 unit, got {int(first['input'])}"
    return f"a layer has at most {MAX_UNITS} units, got {int(first['input'])}"


def width_choices(*, lengths: bool) -> Callable[[Any, list[dict]], str | None]:
    """Widths to choose from: a choice below 1 shows them all, else the widest is named; with `lengths`, also too few
    or too many of them."""

    def word(value: Any, errors: list[dict]) -> str | None:
        if not isinstance(value, list):
            return None
        kinds = {e["type"] for e in errors}
        if lengths and "too_short" in kinds:
            return f"give at least one units choice, got {shown(value)}"
        if lengths and "too_long" in kinds:
            return f"give at most {MAX_CHOICES} units choices, got {len(value)}"
        if "greater_than_equal" in kinds:
            return f"units choices must be positive integers, got {shown(value)}"
        if "less_than_equal" in kinds:
            widest = max(int(e["input"]) for e in errors if e["type"] == "less_than_equal")
            return f"a layer has at most {MAX_UNITS} units, got {widest}"
        return None

    return word


def batch_sizes(value: Any, errors: list[dict]) -> str | None:
    """A batch size or a list of choices of one: too few or too many, else the first out of range."""
    kinds = {e["type"] for e in errors}
    if isinstance(value, list) and "too_short" in kinds:
        return f"give at least one batch_size choice, got {shown(value)}"
    if isinstance(value, list) and "too_long" in kinds:
        return f"give at most {MAX_CHOICES} batch_size choices, got {len(value)}"
    size = _first_int(errors, "greater_than_equal", "less_than_equal")
    return None if size is None else f"a batch holds 1 to {MAX_BATCH_SIZE} samples, got {size}"


def depths_in_range(value: Any, errors: list[dict]) -> str | None:
    depth = _first_int(errors, "greater_than_equal", "less_than_equal")
    return None if depth is None else f"a depth must lie in 1..{MAX_DEPTH}, got {shown(depth)}"


def bare_number(wording: str) -> Callable[[Any, list[dict]], str | None]:
    """A bare number out of its range (a range [low, high] is checked by the field's own validator)."""

    def word(value: Any, errors: list[dict]) -> str | None:
        return None if isinstance(value, (dict, list, BaseModel)) else f"{wording}, got {float(value)}"

    return word


def or_pair(*, log: bool) -> Callable[[dict], None]:
    """A `json_schema_extra` hook that adds the `[low, high]` shorthand, which `_as_float_range` reads before
    validation (so pydantic cannot see it): each end bounded as the field's bare number is, and above 0 for a log
    range (FloatRange's own rule)."""

    def extra(schema: dict) -> None:
        number = next(form for form in schema["anyOf"] if form.get("type") == "number")
        ends = {key: value for key, value in number.items() if key != "type"}
        if log:
            ends.pop("minimum", None)
            ends["exclusiveMinimum"] = max(ends.get("exclusiveMinimum", 0), 0)
        pair = {"type": "array", "items": {"type": "number", **ends}, "minItems": 2, "maxItems": 2}
        schema["anyOf"].append({**pair, "description": "a range [low, high]"})

    return extra
