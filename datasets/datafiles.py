"""The data files shipped inside the package, in `data/` (their origins and licences: data/LICENSES.md)."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_file(folder: str, name: str) -> Path:
    """Return the path of a shipped data file, or raise DataError if the installation lacks it."""
    path = DATA_DIR / folder / name
    if not path.is_file():
        raise DataError(f"{path}: data file missing from the installed stacktune package; reinstall it")
    return path
