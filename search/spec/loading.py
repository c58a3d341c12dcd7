"""Reading specs and configs from YAML: overrides, paths anchored to the file, and the data they name.

Every problem becomes a one-line `ConfigError` naming the file, the field and the bad value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stacktune.datasets import DatasetSpec

from ..errors import ConfigError, first_line
from .messages import Hints, describe, one_line
from .schema import EvaluationSection, SearchSpec, SpaceSection

Model = TypeVar("Model", bound=BaseModel)


# How a union field's valid forms read in a message when the value fits none of them.
_UNION_FORMS: Hints = {
    (SpaceSection, "units"): (
        "a list of choices like [16, 32, 64], a range {low, high, step}, {choices: [...], shared: true} or {params: N}"
    ),
    (EvaluationSection, "seeds"): "a number of seeds from 0 to 1000, or auto",
    (SpaceSection, "lr"): "a positive number, a range [low, high] or {low, high, log}",
    (SpaceSection, "dropout"): "a number in [0, 1), a range [low, high] or {low, high}",
    (SpaceSection, "weight_decay"): "a number >= 0, a range [low, high] or {low, high, log}",
    (SpaceSection, "batch_size"): "a list of choices like [32, 64], a single integer or null",
    (DatasetSpec, "target"): "a column name or a list of column names",
}


def describe_validation_error(error: ValidationError, model: type[BaseModel] | None = None, data: Any = None) -> str:
    """One line for the most useful problem pydantic found: `field.path: what is wrong, got value`.

    With `model` (the class validated) and `data` (its input), unknown keys get a did-you-mean,
    wrong types and bounds say what would be valid, and union fields list their forms.
    """
    return describe(error, model, data, _UNION_FORMS)


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file, or a ConfigError that names the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date like 2024-13-45, or a 5000-digit number
        raise ConfigError(one_line(f"{path}: not valid YAML ({exc})")) from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def parse(model: type[Model], data: dict, *, source: str) -> Model:
    """Validates `data` as `model`, raising a one-line ConfigError naming `source`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(one_line(f"{source}: {describe_validation_error(exc, model, data)}")) from None


def load_yaml(model: type[Model], path: str | Path) -> Model:
    """Reads and validates a YAML file as `model`."""
    return parse(model, read_yaml(path), source=str(path))


def load_spec(
    path: str | Path, *, overrides: dict[str, Any] | None = None, confine: str | Path | None = None
) -> SearchSpec:
    """Reads a search spec, applies command-line overrides, and anchors a CSV path to the spec's folder.

    With `confine` (a submitted job's folder), the spec may not make the search read or write files outside it.
    """
    path = Path(path)
    spec = parse(SearchSpec, read_overridden(path, overrides), source=str(path))
    if spec.dataset.csv:
        spec.dataset.csv = str((path.resolve().parent / spec.dataset.csv).resolve())
    if confine is not None:
        _check_confined(spec, Path(confine).resolve(), source=str(path))
    return spec


def read_overridden(path: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The spec file's mapping with each non-None `section.key` override set in it."""
    raw = read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *sections, leaf = key.split(".")
        target = raw
        for section in sections:
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{path}: {section}: expected a mapping")
        target[leaf] = value
    return raw


def _check_confined(spec: SearchSpec, folder: Path, *, source: str) -> None:
    """Raises ConfigError when a spec names a file outside `folder`: a CSV, or an SQLite study database."""
    named = {"dataset.csv": spec.dataset.csv}
    if spec.storage and spec.storage.startswith("sqlite"):
        named["storage"] = spec.storage.split(":///", 1)[-1] or "."
    for field, value in named.items():
        if value and not Path(folder, value).resolve().is_relative_to(folder):
            raise ConfigError(
                f"{source}: {field}: {value!r} lies outside the job's folder; submit files that travel with the job"
            )


def load_data(dataset: DatasetSpec, *, base_dir: Path | None):
    """The prepared dataset a spec or config names, or a ConfigError with the loader's one-line reason."""
    from stacktune.datasets import load

    try:
        return load(dataset, base_dir=base_dir)
    except (ValueError, OSError) as exc:  # DataError is a ValueError
        raise ConfigError(first_line(exc)) from None
