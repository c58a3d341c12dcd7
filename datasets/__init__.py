"""Datasets for stacktune: a registry of built-in sets and user CSVs, prepared for LSTM training.

Importing this package is cheap; pandas, statsmodels and sktime data are only touched by
the loaders that need them.
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
