"""UEA/UCR classification sets, read from the archive's `.ts` files shipped in data/.

The files are those sktime ships, copied unchanged (see data/LICENSES.md). A small parser
reads them and keeps variable-length cases as they are.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from .datafiles import DATA_DIR, data_file
from .errors import DataError
from .samples import Sequences
from .spec import DatasetSpec


@cache
def parse_ts(path: Path) -> tuple[tuple[np.ndarray, ...], tuple[str, ...], tuple[str, ...]]:
    """Parse a `.ts` file without timestamps or missing values.

    Returns per-case read-only arrays (time, channels), each case's label, and the class
    labels in the order the header declares them. Cached, since searches reload often.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    declared: list[str] = []
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with path.open(encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                key, _, rest = line.partition(" ")
                key = key.lower()
                if key == "@classlabel":
                    declared = rest.split()[1:]
                elif key in ("@timestamps", "@missing") and rest.strip().lower() == "true":
                    raise DataError(f"{path}: line {line_no}: `{key} true` is not supported")
                in_data = key == "@data"
                continue
            *dims, label = line.split(":")
            try:
                channels = [np.array(dim.split(","), dtype=np.float64) for dim in dims]
            except ValueError as error:
                raise DataError(f"{path}: line {line_no}: non-numeric value ({error})") from None
            if len({len(c) for c in channels}) != 1:
                raise DataError(f"{path}: line {line_no}: channels of one case differ in length")
            case = np.column_stack(channels)
            case.setflags(write=False)
            cases.append(case)
            labels.append(label.strip())
    if not cases:
        raise DataError(f"{path}: no cases after @data")
    return tuple(cases), tuple(labels), tuple(declared)


def load_problem(problem: str) -> Sequences:
    """Load <problem>_TRAIN.ts and _TEST.ts as one labelled set whose TEST cases form the fixed test split.

    Labels become 0..K-1 in the header's declared order (first seen, if none is declared).
    """
    folder = DATA_DIR / problem
    train_x, train_y, declared = parse_ts(data_file(problem, f"{problem}_TRAIN.ts"))
    test_x, test_y, _ = parse_ts(data_file(problem, f"{problem}_TEST.ts"))
    names = list(declared) or list(dict.fromkeys(train_y + test_y))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(train_y + test_y) - set(index))
    if unknown:
        raise DataError(f"{folder}: labels {unknown} are not among the declared classes {names}")
    channels = train_x[0].shape[1]
    return Sequences(
        x=train_x + test_x,
        y=np.array([index[label] for label in train_y + test_y]),
        columns=[f"dim_{i}" for i in range(channels)],
        labels=names,
        test_from=len(train_x),
    )


def japanese_vowels(spec: DatasetSpec) -> Sequences:
    """JapaneseVowels (UEA): 12 LPC cepstrum channels, 7-29 steps, 9 speakers."""
    return load_problem("JapaneseVowels")


def italy_power_demand(spec: DatasetSpec) -> Sequences:
    """ItalyPowerDemand (UCR): 24 hourly demand values, 2 seasons."""
    return load_problem("ItalyPowerDemand")


def basic_motions(spec: DatasetSpec) -> Sequences:
    """BasicMotions (UEA): 6 motion-sensor channels, 100 steps, 4 activities."""
    return load_problem("BasicMotions")
