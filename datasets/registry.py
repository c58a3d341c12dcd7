"""The dataset registry: list the built-in sets and load any spec into a Prepared set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import csvfile, packaged, synthetic, ucr
from .catalog import INFOS
from .errors import DataError
from .forecast import Series, prepare_series
from .samples import Sequences, prepare_sequences
from .spec import DatasetSpec
from .types import DatasetInfo, Prepared

_LOADERS: dict[str, Callable[[DatasetSpec], Series | Sequences]] = {
    "sine": synthetic.sine,
    "linear": synthetic.linear,
    "fibonacci": synthetic.fibonacci,
    "mackey_glass": synthetic.mackey_glass,
    "adding": synthetic.adding,
    "sunspots": packaged.sunspots,
    "co2": packaged.co2,
    "macrodata": packaged.macrodata,
    "japanese_vowels": ucr.japanese_vowels,
    "italy_power_demand": ucr.italy_power_demand,
    "basic_motions": ucr.basic_motions,
}


def list_datasets() -> list[DatasetInfo]:
    """Return the built-in datasets' registry entries; instant, as it loads no data."""
    return list(INFOS.values())


def load(spec: DatasetSpec | dict, *, base_dir: str | Path | None = None) -> Prepared:
    """Load, split, window (for forecasting) and scale the data a spec describes.

    A dict is validated as a DatasetSpec first; a relative `csv` path is resolved against
    `base_dir` (for example the config file's folder), else the working directory.
    """
    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec.model_validate(spec)
    if spec.csv is not None:
        path = spec.csv_path(base_dir)
        name, source, where = path.stem, f"csv: {path}", str(path)
    else:
        name, source, where = spec.name, INFOS[spec.name].source, f"dataset {spec.name!r}"
    if spec.forecasting and spec.window is None:
        raise DataError(f"{where}: forecasting needs `window` (input time steps) in the dataset spec")

    if spec.csv is None:
        data = _LOADERS[spec.name](spec)
    elif spec.forecasting:
        data = csvfile.read_series(path, spec)
    else:
        data = csvfile.read_sequences(path, spec)

    if isinstance(data, Series):
        return prepare_series(
            data,
            name=name,
            source=source,
            where=where,
            window_size=spec.window,
            horizon=spec.horizon,
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            scale=spec.scale,
            transform=spec.transform,
            season=spec.season,
        )
    return prepare_sequences(
        data,
        name=name,
        source=source,
        where=where,
        val_fraction=spec.val_fraction,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
        scale=spec.scale,
    )
