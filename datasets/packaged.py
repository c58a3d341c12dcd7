"""Real forecasting series shipped inside statsmodels, so they load offline.

statsmodels (and pandas) are imported inside the loaders because they take about a
second to import, and the CLI must start fast.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .errors import DataError
from .forecast import Series
from .spec import DatasetSpec

MACRO_TARGET = "realgdp"
MACRO_FEATURES = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "unemp")


def _statsmodels_dataset(module: str):
    """Import `statsmodels.datasets.<module>`, turning a missing install into a DataError."""
    import importlib

    try:
        return importlib.import_module(f"statsmodels.datasets.{module}")
    except ImportError as error:
        raise DataError(f"dataset {module!r} needs statsmodels, which failed to import: {error}") from None


@cache
def _frame_values(module: str, columns: tuple[str, ...]) -> np.ndarray:
    """Return the chosen columns of a statsmodels dataset as a read-only float64 array, cached per process."""
    frame = _statsmodels_dataset(module).load_pandas().data
    # co2 is weekly with missing weeks; interpolate in time, and at the ends hold the nearest value.
    frame = frame[list(columns)].interpolate(method="linear", limit_direction="both")
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
