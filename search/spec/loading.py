"""Reading specs and configs from YAML: overrides, paths anchored to the file, and the data they name.

Every problem becomes a one-line `ConfigError` naming the file, the field and the bad value.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stacktune.datasets import DatasetSpec
from stacktune.datasets.errors import byte_size, shown

from ..errors import ConfigError, first_line
from .messages import Hints, describe, one_line
from .schema import EvaluationSection, SearchSpec, SpaceSection

Model = TypeVar("Model", bound=BaseModel)

MAX_SPEC_BYTES = 1 << 20  # the largest spec or config file read, checked before reading it
# The most nodes (mappings, lists and scalars) a YAML document may hold once its aliases are expanded: nested
# anchors and aliases (a "billion laughs") make a small file stand for billions of values.
MAX_YAML_NODES = 20_000


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


class _Refused(Exception):
    """A YAML document refused before it is built into Python values; the message says why."""


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a document of more than MAX_YAML_NODES nodes, as written or once its aliases
    are expanded, before any of it is built into Python values."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._composed += 1
        if self._composed > MAX_YAML_NODES:  # stops reading a long document early
            raise _Refused(f"too many YAML nodes (more than {MAX_YAML_NODES})")
        return super().compose_node(parent, index)

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _count_expanded(node, MAX_YAML_NODES)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # PyYAML keeps the last of two equal keys; a setting written twice is far more likely a mistake.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _Refused(f"key {shown(key)} appears twice in one mapping (lines {seen[key]} and {line})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _count_expanded(root: yaml.Node, limit: int) -> int:
    """The nodes under `root` with every alias expanded, counting each shared node once per reference.

    Each node is visited once (sizes are kept by node), so a document of a few hundred aliases standing for
    billions of values is counted in microseconds; raises _Refused above `limit`, or when an alias refers to a
    node that contains it.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > limit:
                raise _Refused(f"too many YAML nodes once aliases are expanded (more than {limit})")
        elif key in open_nodes:
            raise _Refused("a YAML alias refers to a node that contains it")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    return sizes[id(root)]


def _read_text(path: Path) -> str:
    """The file's text, refused unread when it is larger than MAX_SPEC_BYTES."""
    try:
        info = path.stat()
        if stat.S_ISFIFO(info.st_mode):
            # Opening a named pipe waits for a writer, for ever if none comes; an unread pipe from the shell
            # (`<(cat spec.yaml)`) has one already, and opens at once.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            handle = os.fdopen(fd, "rb")
        elif stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path}: is a folder, not a file")
        elif info.st_size > MAX_SPEC_BYTES:
            raise ConfigError(_too_large(path, info.st_size))
        else:
            handle = path.open("rb")
        with handle:  # not every file has a size (a pipe): never read past the limit
            raw = handle.read(MAX_SPEC_BYTES + 1)
        if not raw and stat.S_ISFIFO(info.st_mode):
            raise ConfigError(f"{path}: a named pipe (FIFO) that no program writes to: give a YAML file")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise ConfigError(_too_large(path, None))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None


def _too_large(path: Path, size: int | None) -> str:
    what = f"{size} bytes ({byte_size(size)})" if size is not None else f"over {MAX_SPEC_BYTES} bytes"
    return f"{path}: file is {what}, over the {byte_size(MAX_SPEC_BYTES)} limit for a spec or config file"


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file, or a ConfigError that names the file.

    Files over MAX_SPEC_BYTES are refused before they are read, and documents whose aliases expand to more than
    MAX_YAML_NODES nodes before they are built.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_BoundedLoader)
    except _Refused as exc:
        raise ConfigError(f"{path}: {exc}") from None
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
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(one_line(f"{source}: {describe_validation_error(exc, model, data)}")) from None
    # pydantic reads true and false as 1 and 0 where a number is expected (`depths: [true, 2]` as [1, 2]).
    for path, value in _numbers_from_booleans(data, validated):
        raise ConfigError(f"{source}: {path}: expected a number, got {str(value).lower()}")
    return validated


_ABSENT = object()


def _child(value: Any, key: Any) -> Any:
    if isinstance(value, BaseModel):
        return getattr(value, key, _ABSENT) if isinstance(key, str) else _ABSENT
    if isinstance(value, dict):
        return value.get(key, _ABSENT)
    if isinstance(value, (list, tuple)) and isinstance(key, int) and 0 <= key < len(value):
        return value[key]
    return _ABSENT


def _numbers_from_booleans(raw: Any, validated: Any, path: str = ""):
    """(field path, boolean) for each true or false in `raw` that validation turned into a number."""
    if isinstance(raw, bool):
        if isinstance(validated, (int, float)) and not isinstance(validated, bool):
            yield path, raw
        return
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = enumerate(raw)
    else:
        return
    for key, value in items:
        child = _child(validated, key)
        if child is not _ABSENT:
            yield from _numbers_from_booleans(value, child, f"{path}.{key}" if path else str(key))


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


def check_origins(spec, data) -> None:
    """A ConfigError (one line) when the data cannot be cut into the evaluation's `origins`."""
    from stacktune.datasets.origins import evaluation_origins

    evaluation = spec.evaluation
    if not evaluation.enabled or evaluation.origins == 1:
        return
    where = spec.dataset.name or spec.dataset.csv or "the dataset"
    try:
        evaluation_origins(data, evaluation.origins, seed=spec.seed, where=where)
    except ValueError as exc:  # DataError is a ValueError
        raise ConfigError(first_line(exc)) from None
