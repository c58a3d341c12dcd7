"""The `dataset:` section of a user's YAML config, validated with pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .catalog import FORECASTING, GENERATED, INFOS, unknown_name_message

# Upper bounds on every size a spec sets, checked before anything is generated, read or allocated.
MAX_WINDOW = 10_000  # input steps of a forecasting window
MAX_HORIZON = 10_000  # steps predicted
MAX_LENGTH = 1_000_000  # rows of a synthetic series or samples of `adding` (mackey_glass integrates 10 steps a row)
MAX_SEQ_LEN = 10_000  # steps of one `adding` sequence
MAX_ADDING_STEPS = 10_000_000  # `length` x `seq_len` of the adding problem: the values it generates
MAX_COLUMNS = 10_000  # names in `target` or `features`
MAX_PATH = 4096  # characters of a `csv` path (Linux's PATH_MAX)
DEFAULT_SEQ_LEN = 50  # steps of an `adding` sequence when `seq_len` is not given

_CSV_ONLY = ("target", "features", "task", "sequence")
Transform = Literal["none", "diff", "log_diff"]


class DatasetSpec(BaseModel):
    """Which data to load and how to window, split and scale it.

    Exactly one of `name` (a built-in set) or `csv` (a file) is given. `window` is
    checked when loading rather than here, so a search may leave it to each trial.

    Forecasting sets only: `transform` makes a series that is not stationary more so before
    the split ("diff": first differences; "log_diff": differences of the natural log, for
    series that are all > 0), and `season` is the seasonal period in rows that a seasonal
    naive baseline repeats (for example 11 for yearly sunspots, 52 for weekly co2, 4 for
    quarterly macrodata).
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    csv: str | None = Field(default=None, max_length=MAX_PATH)
    target: str | list[str] | None = None
    features: list[str] | None = Field(default=None, min_length=1, max_length=MAX_COLUMNS)
    task: Literal["regression", "classification"] | None = None
    sequence: str | None = None
    window: int | None = Field(default=None, ge=1, le=MAX_WINDOW)
    horizon: int = Field(default=1, ge=1, le=MAX_HORIZON)
    val_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    length: int | None = Field(default=None, ge=1, le=MAX_LENGTH)
    seq_len: int | None = Field(default=None, ge=2, le=MAX_SEQ_LEN)
    scale: bool = True
    transform: Transform = "none"
    season: int | None = Field(default=None, ge=2)

    @field_validator("name")
    @classmethod
    def _known_name(cls, name: str | None) -> str | None:
        if name is not None and name not in INFOS:
            raise ValueError(unknown_name_message(name))
        return name

    @field_validator("target")
    @classmethod
    def _nonempty_target(cls, target: str | list[str] | None) -> str | list[str] | None:
        if isinstance(target, list) and not target:
            raise ValueError("`target` must name at least one column")
        if isinstance(target, list) and len(target) > MAX_COLUMNS:
            raise ValueError(f"`target` may name at most {MAX_COLUMNS} columns, got {len(target)}")
        return target

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        if (self.name is None) == (self.csv is None):
            raise ValueError("give exactly one of `name` (a built-in dataset) or `csv` (a file path)")
        if self.name is not None:
            self._check_named()
        else:
            self._check_csv()
        self._check_forecasting_only()
        return self

    def _check_named(self) -> None:
        given = [field for field in _CSV_ONLY if getattr(self, field) is not None]
        if given:
            raise ValueError(f"`{given[0]}` applies only to `csv` datasets, not to built-in {self.name!r}")
        if self.length is not None and self.name not in GENERATED:
            raise ValueError(f"`length` applies only to synthetic datasets ({', '.join(sorted(GENERATED))})")
        if self.seq_len is not None and self.name != "adding":
            raise ValueError("`seq_len` applies only to the 'adding' dataset")
        if self.name == "adding":
            samples = self.length if self.length is not None else INFOS["adding"].length
            steps = self.seq_len if self.seq_len is not None else DEFAULT_SEQ_LEN
            if samples * steps > MAX_ADDING_STEPS:
                raise ValueError(
                    f"`length` x `seq_len` of 'adding' may be at most {MAX_ADDING_STEPS} steps in all, "
                    f"got {samples} x {steps}"
                )

    def _check_csv(self) -> None:
        if self.target is None:
            raise ValueError("`target` is required with `csv`: the column(s) to predict or the label column")
        for field in ("length", "seq_len"):
            if getattr(self, field) is not None:
                raise ValueError(f"`{field}` applies only to synthetic datasets, not to `csv`")
        if self.task == "classification":
            if self.sequence is None:
                raise ValueError("`sequence` (the sequence id column) is required for `csv` classification")
            if len(self.targets) != 1:
                raise ValueError("`target` must be a single label column for classification")
        elif self.sequence is not None:
            raise ValueError("`sequence` applies only to `task: classification`")

    def _check_forecasting_only(self) -> None:
        given = [field for field, unset in (("transform", "none"), ("season", None)) if getattr(self, field) != unset]
        if given and not self.forecasting:
            kind = f"built-in {self.name!r}" if self.name is not None else "`task: classification`"
            raise ValueError(f"`{given[0]}` applies only to forecasting sets, not to {kind}")

    @property
    def targets(self) -> list[str]:
        """The target column names as a list (empty for built-in sets)."""
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @property
    def forecasting(self) -> bool:
        """Whether this spec describes a windowed series, which needs `window`."""
        if self.csv is not None:
            return self.task != "classification"
        return self.name in FORECASTING

    def csv_path(self, base_dir: str | Path | None = None) -> Path:
        """Return the CSV path; a relative one is resolved against `base_dir`, else the working directory."""
        path = Path(self.csv).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return path.resolve()
