"""Typed configuration files: the `stacktune train` config and the search spec.

Both are validated at the edge with pydantic; `spec.loading` reads them from YAML and turns every
problem into a `ConfigError` whose one line names the file, the field and the bad value. The limits on every size,
and how a value that breaks one is worded, are in `spec.bounds`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stacktune.datasets import DatasetSpec
from stacktune.datasets.errors import shown

from .bounds import (
    MAX_BATCH_SIZE,
    MAX_BRACKETS,
    MAX_BUDGET_SECONDS,
    MAX_CHOICES,
    MAX_CONCURRENT,
    MAX_CPUS_PER_TRIAL,
    MAX_DEPTH,
    MAX_EPOCHS,
    MAX_FAILURES,
    MAX_GPUS_PER_TRIAL,
    MAX_ORIGINS,
    MAX_PARAMS,
    MAX_REPLICATES,
    MAX_SEEDS,
    MAX_SPEC_SEED,
    MAX_TOP_K,
    MAX_TRAIN_SEED,
    MAX_TRIALS,
    MAX_UNITS,
    MAX_URL,
    BatchSize,
    BatchSizeChoices,
    Depth,
    Width,
    WidthChoices,
    bare_number,
    batch_sizes,
    depths_in_range,
    finite_number,
    layer_widths,
    or_pair,
    width_choices,
    worded,
)

_Strict = ConfigDict(extra="forbid")


def _usable_csv_path(dataset: DatasetSpec) -> DatasetSpec:
    """Rejects a `csv` path no file system accepts, before anything resolves it."""
    if dataset.csv is not None and "\x00" in dataset.csv:
        raise ValueError(f"`csv` cannot contain a NUL character, got {shown(dataset.csv)}")
    return dataset


class ModelSection(BaseModel):
    """The stack: one width per layer, dropout between layers, optional residuals."""

    model_config = _Strict
    units: list[Width] = Field(min_length=1, max_length=MAX_DEPTH, description="the width of each layer, first to last")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout between layers")
    residual: bool = False
    forget_bias: float = 1.0

    _worded_units = field_validator("units", mode="wrap")(worded(layer_widths))

    _finite_bias = field_validator("forget_bias")(finite_number)


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

    _finite_values = field_validator("weight_decay", "grad_clip")(finite_number)


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
    choices: list[Width] = Field(min_length=1, max_length=MAX_CHOICES)
    shared: bool = Field(False, description="one width for every layer of a stack")

    _worded_choices = field_validator("choices", mode="wrap")(worded(width_choices(lengths=False)))


class MatchedUnits(BaseModel):
    """Equal widths chosen per depth so that every stack has about `params` weights."""

    model_config = _Strict
    params: int = Field(ge=16, le=MAX_PARAMS, description="about how many weights every stack has")
    widths: dict[int, Width] | None = Field(
        None, description="depth -> width, filled in once the data's input and output sizes are known"
    )


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
    units: WidthChoices | IntRange | UnitChoices | MatchedUnits = Field(
        default_factory=lambda: [16, 32, 64, 128],
        description="widths to choose from for each layer, a range {low, high, step}, {choices, shared} or {params}",
    )
    lr: FloatRange | Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default_factory=lambda: FloatRange(low=1e-4, high=1e-2, log=True),
        description="the learning rate: a log-uniform range [low, high], {low, high, log} or a fixed number",
        json_schema_extra=or_pair(log=True),
    )
    dropout: FloatRange | Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = Field(
        0.0,
        description="dropout between layers: a uniform range [low, high], {low, high} or a fixed number",
        json_schema_extra=or_pair(log=False),
    )
    weight_decay: FloatRange | Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        0.0,
        description="weight decay: a log-uniform range [low, high], {low, high, log} or a fixed number",
        json_schema_extra=or_pair(log=True),
    )
    batch_size: BatchSizeChoices | BatchSize | None = Field(
        None, description="batch sizes to choose from, or one (null: train.batch_size)"
    )

    @field_validator("lr", "weight_decay", mode="before")
    @classmethod
    def _log_range(cls, value: Any) -> Any:
        return _as_float_range(value, log=True)

    @field_validator("dropout", mode="before")
    @classmethod
    def _linear_range(cls, value: Any) -> Any:
        return _as_float_range(value, log=False)

    _worded_units = field_validator("units", mode="wrap")(worded(width_choices(lengths=True)))
    _worded_batch_size = field_validator("batch_size", mode="wrap")(worded(batch_sizes))
    _worded_lr = field_validator("lr", mode="wrap")(
        worded(bare_number("the learning rate must be a finite number > 0"))
    )
    _worded_dropout = field_validator("dropout", mode="wrap")(worded(bare_number("dropout must lie in [0, 1)")))
    _worded_weight_decay = field_validator("weight_decay", mode="wrap")(
        worded(bare_number("weight decay must be a finite number >= 0"))
    )

    # A range's ends are bounded here: FloatRange is shared by all three fields, so it cannot carry their bounds.
    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, lr: FloatRange | float) -> FloatRange | float:
        if isinstance(lr, FloatRange) and not lr.low > 0:
            raise ValueError(f"the learning rate must be a finite number > 0, got {lr.low}")
        return lr

    @field_validator("dropout")
    @classmethod
    def _dropout_bounds(cls, dropout: FloatRange | float) -> FloatRange | float:
        if isinstance(dropout, FloatRange) and not (0 <= dropout.low and dropout.high < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {dropout.high if 0 <= dropout.low else dropout.low}")
        return dropout

    @field_validator("weight_decay")
    @classmethod
    def _weight_decay_bounds(cls, decay: FloatRange | float) -> FloatRange | float:
        if isinstance(decay, FloatRange) and not decay.low >= 0:
            raise ValueError(f"weight decay must be a finite number >= 0, got {decay.low}")
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

    _finite_clip = field_validator("grad_clip")(finite_number)


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

    _finite_resources = field_validator("cpus_per_trial", "gpus_per_trial")(finite_number)


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
    # Data origins every candidate is retrained and scored on: rolling origins over the test segment for a series,
    # re-drawn validation sets for independent sequences (datasets.origins); 1 is the search's own split alone.
    origins: int = Field(
        1,
        ge=1,
        le=MAX_ORIGINS,
        description="train/validation/test splits each candidate is scored on (rolling origins for a series)",
    )

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
    depths: list[Depth] = Field(
        min_length=1, description="the depths to compare", json_schema_extra={"uniqueItems": True}
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

    _worded_depths = field_validator("depths", mode="wrap")(worded(depths_in_range))

    @field_validator("depths")
    @classmethod
    def _depths(cls, depths: list[int]) -> list[int]:
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
