"""Typed configuration files: the `stacktune train` config and the search spec.

Both are validated at the edge with pydantic; `spec.loading` reads them from YAML and turns every
problem into a `ConfigError` whose one line names the file, the field and the bad value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stacktune.datasets import DatasetSpec
from stacktune.datasets.errors import shown

_Strict = ConfigDict(extra="forbid")

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


def _finite(value: float | None) -> float | None:
    """Rejects NaN and infinity, which pydantic's bounds let through where a field has none."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


def _within(low: int, high: int, *, max_items: int | None = None, unique: bool = False) -> Callable[[dict], None]:
    """A `json_schema_extra` hook saying what a field's validator checks: its integers, bare or in a list, lie in
    low..high, a list holds 1 to `max_items` of them, and with `unique` none twice."""

    def extra(schema: dict) -> None:
        for form in schema.get("anyOf", [schema]):
            if form.get("type") == "integer":
                form.update(minimum=low, maximum=high)
            elif form.get("type") == "array":
                form["items"] = {"type": "integer", "minimum": low, "maximum": high}
                if max_items is not None:
                    form.update(minItems=1, maxItems=max_items)
                if unique:
                    form["uniqueItems"] = True

    return extra


def _number_or_pair(number: dict[str, float], ends: dict[str, float]) -> Callable[[dict], None]:
    """A `json_schema_extra` hook for a searched float: a bare number within `number`'s bounds, or the `[low, high]`
    shorthand that `_as_float_range` reads before validation, each end within `ends`' bounds."""

    def extra(schema: dict) -> None:
        for form in schema["anyOf"]:
            if form.get("type") == "number":
                form.update(number)
        pair = {"type": "array", "items": {"type": "number", **ends}, "minItems": 2, "maxItems": 2}
        schema["anyOf"].append({**pair, "description": "a range [low, high]"})

    return extra


def _usable_csv_path(dataset: DatasetSpec) -> DatasetSpec:
    """Rejects a `csv` path no file system accepts, before anything resolves it."""
    if dataset.csv is not None and "\x00" in dataset.csv:
        raise ValueError(f"`csv` cannot contain a NUL character, got {shown(dataset.csv)}")
    return dataset


class ModelSection(BaseModel):
    """The stack: one width per layer, dropout between layers, optional residuals."""

    model_config = _Strict
    units: list[int] = Field(
        min_length=1,
        max_length=MAX_DEPTH,
        description="the width of each layer, first to last",
        json_schema_extra=_within(1, MAX_UNITS),
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout between layers")
    residual: bool = False
    forget_bias: float = 1.0

    @field_validator("units")
    @classmethod
    def _positive_units(cls, units: list[int]) -> list[int]:
        for width in units:
            if width < 1:
                raise ValueError(f"every layer needs at least 1 unit, got {width}")
            if width > MAX_UNITS:
                raise ValueError(f"a layer has at most {MAX_UNITS} units, got {width}")
        return units

    _finite_bias = field_validator("forget_bias")(_finite)


class TrainSection(BaseModel):
    """How one configuration is trained."""

    model_config = _Strict
    lr: float = Field(gt=0.0, allow_inf_nan=False)
    epochs: int = Field(30, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    weight_decay: float = Field(0.0, ge=0.0)
    optimizer: Literal["adamw", "adam"] = "adamw"
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: autocast forward passes, for GPUs with Tensor Cores"
    )
    patience: int | None = Field(
        None,
        ge=1,
        le=MAX_EPOCHS,
        description="stop after this many epochs without a lower validation loss (null: train every epoch)",
    )
    seed: int = Field(0, ge=0, le=MAX_TRAIN_SEED)

    _finite_values = field_validator("weight_decay", "grad_clip")(_finite)


class TrainConfig(BaseModel):
    """What `stacktune train` reads and what a search exports."""

    model_config = _Strict
    dataset: DatasetSpec
    model: ModelSection
    train: TrainSection
    # Written by exports for the reader's benefit; ignored on input.
    metrics: dict[str, Any] | None = Field(None, description="written by exports; ignored on input")
    source: dict[str, Any] | None = Field(None, description="written by exports; ignored on input")

    _usable_path = field_validator("dataset")(_usable_csv_path)


class FloatRange(BaseModel):
    """A searched float: [low, high], log-uniform when `log`."""

    model_config = _Strict
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"a range needs finite bounds, got [{self.low}, {self.high}]")
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class IntRange(BaseModel):
    """A searched integer: low..high with a step, or log-uniform."""

    model_config = _Strict
    low: int = Field(ge=1, le=MAX_UNITS)
    high: int = Field(ge=1, le=MAX_UNITS)
    step: int = Field(1, ge=1, le=MAX_UNITS)
    log: bool = False
    shared: bool = Field(
        False, description="one width for every layer of a stack, so every depth's space has the same dimension"
    )

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low <= self.high:
            raise ValueError(f"low must not exceed high, got {self.low}..{self.high}")
        if self.log and self.step != 1:
            raise ValueError("a log range takes no step")
        return self


class UnitChoices(BaseModel):
    """Widths to choose from, per layer, or one for every layer when `shared`."""

    model_config = _Strict
    choices: list[int] = Field(min_length=1, max_length=MAX_CHOICES, json_schema_extra=_within(1, MAX_UNITS))
    shared: bool = Field(False, description="one width for every layer of a stack")

    @field_validator("choices")
    @classmethod
    def _positive(cls, choices: list[int]) -> list[int]:
        return _unit_widths(choices)


class MatchedUnits(BaseModel):
    """Equal widths chosen per depth so that every stack has about `params` weights."""

    model_config = _Strict
    params: int = Field(ge=16, le=MAX_PARAMS, description="about how many weights every stack has")
    widths: dict[int, Annotated[int, Field(ge=1, le=MAX_UNITS)]] | None = Field(
        None, description="depth -> width, filled in once the data's input and output sizes are known"
    )


def _unit_widths(units: list[int]) -> list[int]:
    """A list of units choices: at least one, at most MAX_CHOICES, each a width from 1 to MAX_UNITS."""
    if not units:
        raise ValueError("give at least one units choice, got []")
    if len(units) > MAX_CHOICES:
        raise ValueError(f"give at most {MAX_CHOICES} units choices, got {len(units)}")
    if any(u < 1 for u in units):
        raise ValueError(f"units choices must be positive integers, got {shown(units)}")
    widest = max(units)
    if widest > MAX_UNITS:
        raise ValueError(f"a layer has at most {MAX_UNITS} units, got {widest}")
    return units


def _batch_sizes(sizes: list[int] | int | None) -> list[int] | int | None:
    """A batch size or a list of choices of one: at least one, each from 1 to MAX_BATCH_SIZE."""
    if sizes is None:
        return sizes
    listed = sizes if isinstance(sizes, list) else [sizes]
    if not listed:
        raise ValueError("give at least one batch_size choice, got []")
    if len(listed) > MAX_CHOICES:
        raise ValueError(f"give at most {MAX_CHOICES} batch_size choices, got {len(listed)}")
    for size in listed:
        if not 1 <= size <= MAX_BATCH_SIZE:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_SIZE} samples, got {size}")
    return sizes


def _as_float_range(value: Any, *, log: bool) -> Any:
    """Reads `[low, high]` shorthand as a range and a bare number as a fixed value."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"a range is [low, high], got {list(value)}")
        return FloatRange(low=value[0], high=value[1], log=log)
    return value


class SpaceSection(BaseModel):
    """What each depth's study searches. A bare number fixes a setting."""

    model_config = _Strict
    units: list[int] | IntRange | UnitChoices | MatchedUnits = Field(
        default_factory=lambda: [16, 32, 64, 128],
        description="widths to choose from for each layer, a range {low, high, step}, {choices, shared} or {params}",
        json_schema_extra=_within(1, MAX_UNITS, max_items=MAX_CHOICES),
    )
    lr: FloatRange | float = Field(
        default_factory=lambda: FloatRange(low=1e-4, high=1e-2, log=True),
        description="the learning rate: a log-uniform range [low, high], {low, high, log} or a fixed number",
        json_schema_extra=_number_or_pair({"exclusiveMinimum": 0}, {"exclusiveMinimum": 0}),
    )
    dropout: FloatRange | float = Field(
        0.0,
        description="dropout between layers: a uniform range [low, high], {low, high} or a fixed number",
        json_schema_extra=_number_or_pair({"minimum": 0, "exclusiveMaximum": 1}, {"minimum": 0, "exclusiveMaximum": 1}),
    )
    weight_decay: FloatRange | float = Field(
        0.0,
        description="weight decay: a log-uniform range [low, high], {low, high, log} or a fixed number",
        json_schema_extra=_number_or_pair({"minimum": 0}, {"exclusiveMinimum": 0}),
    )
    batch_size: list[int] | int | None = Field(
        None,
        description="batch sizes to choose from, or one (null: train.batch_size)",
        json_schema_extra=_within(1, MAX_BATCH_SIZE, max_items=MAX_CHOICES),
    )

    @field_validator("lr", "weight_decay", mode="before")
    @classmethod
    def _log_range(cls, value: Any) -> Any:
        return _as_float_range(value, log=True)

    @field_validator("dropout", mode="before")
    @classmethod
    def _linear_range(cls, value: Any) -> Any:
        return _as_float_range(value, log=False)

    @field_validator("units")
    @classmethod
    def _unit_choices(cls, units: list[int] | IntRange | UnitChoices | MatchedUnits) -> Any:
        return _unit_widths(units) if isinstance(units, list) else units

    _batch_size_bounds = field_validator("batch_size")(_batch_sizes)

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, lr: FloatRange | float) -> FloatRange | float:
        low = lr.low if isinstance(lr, FloatRange) else lr
        if not (low > 0 and math.isfinite(low)):
            raise ValueError(f"the learning rate must be a finite number > 0, got {low}")
        return lr

    @field_validator("dropout")
    @classmethod
    def _dropout_bounds(cls, dropout: FloatRange | float) -> FloatRange | float:
        low, high = (dropout.low, dropout.high) if isinstance(dropout, FloatRange) else (dropout, dropout)
        if not (0 <= low and high < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {high if 0 <= low else low}")
        return dropout

    @field_validator("weight_decay")
    @classmethod
    def _weight_decay_bounds(cls, decay: FloatRange | float) -> FloatRange | float:
        low = decay.low if isinstance(decay, FloatRange) else decay
        if not (low >= 0 and math.isfinite(low)):
            raise ValueError(f"weight decay must be a finite number >= 0, got {low}")
        return decay


class SearchTrainSection(BaseModel):
    """Training settings shared by every trial."""

    model_config = _Strict
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    optimizer: Literal["adamw", "adam"] = "adamw"
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Literal["fp32", "bf16"] = "fp32"
    # A trial whose worker dies restarts from its last state, saved every this many epochs (0: never).
    checkpoint_every: int = Field(
        5, ge=0, le=MAX_EPOCHS, description="save a trial's state every this many epochs, to restart it from (0: never)"
    )
    # Early stopping inside a trial: stop after this many epochs without a lower validation loss, so `epochs` is a
    # maximum and a best epoch at the end means the trial wanted more (None: train every epoch).
    patience: int | None = Field(
        10,
        ge=1,
        le=MAX_EPOCHS,
        description="stop a trial after this many epochs without a lower validation loss (null: train every epoch)",
    )

    _finite_clip = field_validator("grad_clip")(_finite)


class SamplerSection(BaseModel):
    """Optuna's sampler for every depth's study."""

    model_config = _Strict
    kind: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = Field(5, ge=0, le=MAX_TRIALS)


class ResourcesSection(BaseModel):
    """What Ray reserves for each trial."""

    model_config = _Strict
    cpus_per_trial: float = Field(1.0, gt=0.0, le=MAX_CPUS_PER_TRIAL)
    gpus_per_trial: float = Field(0.0, ge=0.0, le=MAX_GPUS_PER_TRIAL)
    max_concurrent: int | None = Field(None, ge=1, le=MAX_CONCURRENT)
    max_failures: int = Field(
        1, ge=0, le=MAX_FAILURES, description="times a trial whose worker or node died is restarted"
    )

    _finite_resources = field_validator("cpus_per_trial", "gpus_per_trial")(_finite)


class PruningSection(BaseModel):
    """Early stopping of hopeless trials, each compared only with trials of its own depth."""

    model_config = _Strict
    kind: Literal["none", "asha", "hyperband", "median"] = Field(
        "none",
        description="asha: Ray Tune's ASHA; hyperband: ASHA in several brackets; median: Optuna's median pruner",
    )
    grace_epochs: int = Field(2, ge=1, le=MAX_EPOCHS, description="epochs every trial runs before it can be stopped")
    reduction: float = Field(3.0, gt=1.0, description="asha and hyperband: 1/reduction of the trials go on per rung")
    brackets: int = Field(3, ge=1, le=MAX_BRACKETS, description="hyperband: brackets, each with its own grace period")


# Seeds per evaluated configuration: the fewest with which two depths 2 seed-SDs apart are told apart 90% of the
# time while equal depths get a winner at most 5% of the time (the stats module's DEFAULT_SEEDS, found by simulation).
DEFAULT_EVAL_SEEDS = 8


class EvaluationSection(BaseModel):
    """Re-evaluation of each depth's best on the test split, over several seeds."""

    model_config = _Strict
    # A count (0 turns evaluation and the verdict off), or "auto": seeds are added in rounds until every pair of
    # depths is decided or `max_seeds` is reached.
    seeds: Annotated[int, Field(ge=0, le=MAX_SEEDS)] | Literal["auto"] = Field(
        DEFAULT_EVAL_SEEDS,
        description="seeds per evaluated configuration (0: no evaluation), or auto: rounds until decided or max_seeds",
    )
    max_seeds: int = Field(30, ge=2, le=MAX_SEEDS)
    top_k: int = Field(1, ge=1, le=MAX_TOP_K)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)

    @property
    def enabled(self) -> bool:
        """Whether the best configurations are retrained and scored on the test split at all."""
        return self.seeds == "auto" or self.seeds > 0


class BudgetSection(BaseModel):
    """What every depth gets the same of: trials (`trials_per_depth` each), or training seconds.

    With seconds, trials are asked for until a depth's trials have trained `per_depth` seconds in all (its last trial
    may overshoot, and the report says by how much); `trials_per_depth` is then a cap on the trials of a depth.
    """

    model_config = _Strict
    kind: Literal["trials", "seconds"] = "trials"
    per_depth: float | None = Field(
        None,
        gt=0.0,
        le=MAX_BUDGET_SECONDS,
        allow_inf_nan=False,
        description="with kind: seconds, the training seconds each depth gets",
    )

    @model_validator(mode="after")
    def _amount(self) -> "BudgetSection":
        if self.kind == "seconds" and self.per_depth is None:
            raise ValueError("a budget of seconds needs per_depth, the training seconds each depth gets")
        if self.kind == "trials" and self.per_depth is not None:
            raise ValueError("a budget of trials is trials_per_depth; per_depth goes with kind: seconds")
        return self


class BaselineSection(BaseModel):
    """The fixed setting people usually compare depths with: one width and learning rate for all."""

    model_config = _Strict
    units: int = Field(64, ge=1, le=MAX_UNITS)
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE)


GPU_UNITS_MULTIPLE = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_URL = re.compile(r"^[A-Za-z][\w+]*://")  # what SQLAlchemy can parse as dialect[+driver]://...


class SearchSpec(BaseModel):
    """A whole search: the data, the depths, the budget and the space."""

    model_config = _Strict
    name: str = Field(
        description="the MLflow experiment and output folder: letters, digits, '.', '_' and '-'",
        json_schema_extra={"pattern": _NAME.pattern},
    )
    dataset: DatasetSpec
    # At most MAX_DEPTH, as they lie in 1..MAX_DEPTH and never repeat.
    depths: list[int] = Field(
        min_length=1, description="the depths to compare", json_schema_extra=_within(1, MAX_DEPTH, unique=True)
    )
    trials_per_depth: int = Field(ge=1, le=MAX_TRIALS, description="every depth gets this many trials")
    replicates: int = Field(
        1,
        ge=1,
        le=MAX_REPLICATES,
        description="independent searches per depth, each its own study with its own sampler seed and the full "
        "budget; the verdict counts the variation between them (R times the trials)",
    )
    budget: BudgetSection = Field(default_factory=BudgetSection)
    space: SpaceSection = Field(default_factory=SpaceSection)
    train: SearchTrainSection = Field(default_factory=SearchTrainSection)
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    pruning: PruningSection = Field(default_factory=PruningSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    baseline: BaselineSection | None = Field(
        default_factory=BaselineSection, description="the fixed setting depths are also compared with (null: none)"
    )
    storage: str | None = Field(
        None,
        max_length=MAX_URL,
        description="an Optuna storage URL like postgresql://...; default: a journal file in the output folder",
        json_schema_extra={"pattern": _URL.pattern},
    )
    seed: int = Field(0, ge=0, le=MAX_SPEC_SEED, description="seeds the samplers and every trial's training")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):  # match() would let a trailing newline through
            raise ValueError(f"use letters, digits, '.', '_' and '-' only, got {shown(name)}")
        return name

    _usable_path = field_validator("dataset")(_usable_csv_path)

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, storage: str | None) -> str | None:
        if storage is not None and not _URL.match(storage):
            raise ValueError(
                f"expected a database URL like postgresql://user@host/db or sqlite:///optuna.db, got {shown(storage)}"
            )
        return storage

    @field_validator("depths")
    @classmethod
    def _depths(cls, depths: list[int]) -> list[int]:
        for depth in depths:
            if not 1 <= depth <= MAX_DEPTH:
                raise ValueError(f"a depth must lie in 1..{MAX_DEPTH}, got {shown(depth)}")
        if len(set(depths)) != len(depths):
            raise ValueError(f"depths must not repeat, got {shown(depths)}")
        return sorted(depths)

    @model_validator(mode="after")
    def _gpu_friendly_widths(self) -> "SearchSpec":
        # On a GPU, widths that are multiples of 8 fill Tensor Core tiles; a range without its own step gets one.
        units = self.space.units
        if (
            self.resources.gpus_per_trial > 0
            and isinstance(units, IntRange)
            and not units.log
            and "step" not in units.model_fields_set
        ):
            low = -(-units.low // GPU_UNITS_MULTIPLE) * GPU_UNITS_MULTIPLE
            if low <= units.high:
                self.space.units = units.model_copy(update={"low": low, "step": GPU_UNITS_MULTIPLE})
        return self
