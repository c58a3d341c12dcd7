"""Datasets for stacktune: a registry of built-in sets and user CSVs, prepared for LSTM training.

The real sets' files ship inside the package, in data/ (sources and licences: data/LICENSES.md).
Importing this package is cheap; pandas and those files are only touched by the loaders that need them.
"""

from .catalog import get_info
from .errors import DataError
from .registry import list_datasets, load
from .spec import DatasetSpec
from .types import DatasetInfo, Prepared, Split

__all__ = [
    "DataError",
    "DatasetInfo",
    "DatasetSpec",
    "Prepared",
    "Split",
    "get_info",
    "list_datasets",
    "load",
]
