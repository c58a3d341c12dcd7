"""Real forecasting series shipped with stacktune as CSV files, so they load offline.

sunspots, co2 and macrodata are the files of the statsmodels datasets of those names, copied
unchanged into data/ (see data/LICENSES.md). pandas is imported inside the loader because it
takes about a second to import, and the CLI must start fast.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .datafiles import data_file
from .forecast import Series
from .spec import DatasetSpec

MACRO_TARGET = "realgdp"
MACRO_FEATURES = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "unemp")


@cache
def _frame_values(name: str, columns: tuple[str, ...]) -> np.ndarray:
    """Return the chosen columns of data/<name>/<name>.csv as a read-only float64 array, cached per process."""
    import pandas as pd

    frame = pd.read_csv(data_file(name, f"{name}.csv"))[list(columns)].astype(np.float64)
    # co2 is weekly with missing weeks; interpolate in time, and at the ends hold the nearest value.
    frame = frame.interpolate(method="linear", limit_direction="both")
    values = frame.to_numpy(dtype=np.float64)
    values.setflags(write=False)
    return values


def sunspots(spec: DatasetSpec) -> Series:
    """Yearly sunspot activity (SUNACTIVITY), 1700-2008."""
    column = ["SUNACTIVITY"]
    return Series(_frame_values("sunspots", tuple(column)), column, column, column)


def co2(spec: DatasetSpec) -> Series:
    """Weekly atmospheric CO2 at Mauna Loa, 1958-2001, with gaps filled by linear interpolation."""
    return Series(_frame_values("co2", ("co2",)), ["co2"], ["co2"], ["co2"])


def macrodata(spec: DatasetSpec) -> Series:
    """Quarterly US macro series, 1959-2009: all of MACRO_FEATURES as inputs, realgdp as target."""
    columns = list(MACRO_FEATURES)
    return Series(_frame_values("macrodata", MACRO_FEATURES), columns, columns, [MACRO_TARGET])
