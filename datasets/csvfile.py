"""A user's CSV file, read as a forecasting series or as labelled sequences.

Problems are reported as DataError naming the file, the column and the CSV line number
(the header is line 1). pandas is imported inside the readers to keep CLI start-up fast.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError, byte_size, clip, shown
from .forecast import Series
from .samples import Sequences
from .spec import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "#n/a"})
MAX_CSV_BYTES = 2 << 30  # the largest CSV file read, checked before reading it
MAX_CSV_COLUMNS = 10_000  # columns of a CSV file, counted in its header before pandas reads it
# The largest magnitude a value may have: the model trains in float32, whose range ends at about 3.4e38.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)
_LISTED = 20  # column names listed in a message


def _read(path: Path) -> pd.DataFrame:
    """Read every cell as text, so that values are parsed and reported here rather than guessed by pandas."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    size = os.stat(path).st_size
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{path}: file is {size} bytes ({byte_size(size)}), "
            f"over the {byte_size(MAX_CSV_BYTES)} limit for a CSV file"
        )
    _check_columns(path)
    try:
        # index_col=False stops pandas from turning a row's extra leading fields into an index;
        # the warning it gives instead (the row is cut short) is made an error, so nothing is lost silently.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: a row has more fields than the header") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot parse as CSV: {error}") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    repeated = sorted(name for name, count in Counter(frame.columns).items() if count > 1)
    if repeated:
        raise DataError(f"{path}: column {shown(repeated[0])} appears more than once in the header")
    frame = frame.apply(lambda column: column.str.strip())
    # Blank lines are dropped here, not by pandas, so that index + 2 stays the line number.
    frame = frame[~(frame == "").all(axis=1)]
    if frame.empty:
        raise DataError(f"{path}: file has a header but no data rows")
    return frame


def _check_columns(path: Path) -> None:
    """Raise DataError when the header names more than MAX_CSV_COLUMNS columns: pandas would take minutes over
    a file that wide before any other check could speak. Counts the header's commas, a block at a time, and stops
    at the limit."""
    commas = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 16):
            line_end = block.find(b"\n")
            commas += block.count(b",", 0, None if line_end < 0 else line_end)
            if commas >= MAX_CSV_COLUMNS or line_end >= 0:
                break
    if commas >= MAX_CSV_COLUMNS:
        raise DataError(f"{path}: the header has over {MAX_CSV_COLUMNS} columns, the most a CSV file may have")


def _line(frame: pd.DataFrame, position: int) -> int:
    """Return the CSV line number of the row at `position`."""
    return int(frame.index[position]) + 2


def _require(frame: pd.DataFrame, columns: list[str], role: str, path: Path) -> None:
    """Raise DataError for the first of `columns` the file lacks, listing the columns it has."""
    for column in columns:
        if column not in frame.columns:
            raise DataError(f"{path}: {role} column {shown(column)} not found; available columns: {_listed(frame)}")


def _listed(frame: pd.DataFrame) -> str:
    """The file's column names for a message: the first few, each cut short, and how many more there are."""
    names = [clip(str(column)) for column in frame.columns[:_LISTED]]
    more = len(frame.columns) - _LISTED
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Return a column as finite float64 values, or raise DataError naming the first bad line and value."""
    import pandas as pd

    text = frame[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(np.argmax(bad))
        raw = text.iloc[position]
        if np.isinf(values[position]) or _overflows(raw):
            problem = f"an infinite value {shown(raw)}"
        elif raw.lower() in _MISSING:
            problem = f"a missing value (NaN, {shown(raw)})"
        else:
            problem = f"a non-numeric value {shown(raw)}"
        raise DataError(f"{path}: column {shown(column)} has {problem} at line {_line(frame, position)}")
    huge = np.abs(values) > MAX_ABS_VALUE
    if huge.any():
        position = int(np.argmax(huge))
        raise DataError(
            f"{path}: column {shown(column)} has {values[position]:g} at line {_line(frame, position)}, beyond the "
            f"±{MAX_ABS_VALUE:.1e} that float32 (the model's precision) holds: rescale the column"
        )
    return values


def _check_varies(values: np.ndarray, column: str, path: Path) -> None:
    """Raise DataError when a target column holds one value throughout: there is nothing to learn or compare."""
    if len(values) and np.all(values == values[0]):
        raise DataError(
            f"{path}: target column {shown(column)} is constant ({values[0]:g} on every line): nothing to learn"
        )


def _overflows(raw: str) -> bool:
    """A number too large for float64 (1e999): pandas before 3.0 reads it as NaN, not as infinity."""
    try:
        return math.isinf(float(raw))
    except ValueError:
        return False


def _looks_numeric(text: pd.Series) -> bool:
    """Whether most non-missing cells parse as numbers; such a column is then checked strictly.

    A majority rule keeps a stray bad value in a numeric column from silently dropping it.
    """
    import pandas as pd

    present = text[~text.str.lower().isin(_MISSING)]
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() > 0.5


def read_series(path: Path, spec: DatasetSpec) -> Series:
    """Read a forecasting series in file order; inputs default to every numeric column, targets included."""
    frame = _read(path)
    _require(frame, spec.targets, "target", path)
    _require(frame, spec.features or [], "feature", path)
    targets = {column: _numeric(frame, column, path) for column in spec.targets}
    for column, column_values in targets.items():
        _check_varies(column_values, column, path)
    features = spec.features or [column for column in frame.columns if _looks_numeric(frame[column])]
    columns = list(dict.fromkeys(features + spec.targets))
    values = np.column_stack([targets[c] if c in targets else _numeric(frame, c, path) for c in columns])
    lines = frame.index.to_numpy(dtype=np.int64) + 2  # as _line counts them
    return Series(values, columns, list(features), spec.targets, lines)


def _class_names(labels: np.ndarray) -> list[str]:
    """Return the distinct labels, in numeric order when all are numbers, else in text order."""
    names = sorted(set(labels.tolist()))
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def read_sequences(path: Path, spec: DatasetSpec) -> Sequences:
    """Read labelled sequences: rows grouped by the `sequence` column in order of first appearance.

    Inputs default to every numeric column except the label and sequence columns.
    """
    import pandas as pd

    frame = _read(path)
    label, sequence = spec.targets[0], spec.sequence
    _require(frame, [label], "target", path)
    _require(frame, [sequence], "sequence", path)
    _require(frame, spec.features or [], "feature", path)
    if spec.features and {label, sequence} & set(spec.features):
        raise DataError(f"{path}: the label and sequence columns cannot also be features")
    features = spec.features or [
        column for column in frame.columns if column not in (label, sequence) and _looks_numeric(frame[column])
    ]
    if not features:
        raise DataError(f"{path}: no numeric feature columns besides {shown(label)} and {shown(sequence)}")
    values = np.column_stack([_numeric(frame, column, path) for column in features])

    for column in (sequence, label):
        empty = (frame[column] == "").to_numpy()
        if empty.any():
            line = _line(frame, int(np.argmax(empty)))
            raise DataError(f"{path}: column {shown(column)} is empty at line {line}")
    codes, _ = pd.factorize(frame[sequence])
    row_labels = frame[label].to_numpy(dtype=str)
    first = np.unique(codes, return_index=True)[1]  # first row of each sequence, by sequence code
    changed = row_labels != row_labels[first[codes]]
    if changed.any():
        position = int(np.argmax(changed))
        raise DataError(
            f"{path}: column {shown(label)} changes within sequence "
            f"{shown(frame[sequence].iloc[position])} at line {_line(frame, position)}"
        )

    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    names = _class_names(row_labels)
    if len(names) < 2:
        raise DataError(
            f"{path}: column {shown(label)} holds one class ({shown(names[0])}): classification needs at least two"
        )
    index = {name: i for i, name in enumerate(names)}
    return Sequences(
        x=[values[rows] for rows in groups],
        y=np.array([index[row_labels[rows[0]]] for rows in groups]),
        columns=list(features),
        labels=names,
    )
