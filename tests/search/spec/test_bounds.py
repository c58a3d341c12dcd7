"""Every bound the JSON Schema states is the one the loader enforces: walked from `stacktune schema`'s own output, a
value just inside each bound passes the schema and the loader, and a value just outside fails both, with the
loader's one-line message naming the field and the bound."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterator

import pytest
from jsonschema import Draft202012Validator

from stacktune.search.errors import ConfigError
from stacktune.search.interfaces.schema import json_schema
from stacktune.search.spec.loading import parse
from stacktune.search.spec.schema import SearchSpec, TrainConfig

SPEC = {"name": "demo", "dataset": {"name": "sine", "window": 8}, "depths": [1, 2], "trials_per_depth": 2}
TRAIN = {"dataset": {"name": "sine", "window": 8}, "model": {"units": [8]}, "train": {"lr": 0.01}}
# A valid instance of each object the schema defines, to change one key of (the others take their defaults).
OBJECTS: dict[str, dict] = {
    "SearchSpec": SPEC,
    "TrainConfig": TRAIN,
    "DatasetSpec": SPEC["dataset"],
    "ModelSection": TRAIN["model"],
    "TrainSection": TRAIN["train"],
    "IntRange": {"low": 8, "high": 64},
    "UnitChoices": {"choices": [8]},
    "MatchedUnits": {"params": 20_000},
    "BudgetSection": {"kind": "seconds", "per_depth": 60},
}
# What a key needs beside it in its object to be valid at all: a range's other end, the dataset it applies to.
BESIDE = {
    ("IntRange", "low"): {"high": 4096},
    ("IntRange", "high"): {"low": 1},
    ("DatasetSpec", "seq_len"): {"name": "adding", "window": None, "length": 100},
}
LOWER, UPPER = ("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")

Place = Callable[[Any], dict]


def _resolved(schema: dict, node: dict) -> dict:
    return schema["$defs"][node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node


def _cases(schema: dict, node: dict, path: str, place: Place, seen: frozenset = frozenset()) -> Iterator[tuple]:
    """(field path, bound keyword, bound, just-inside value, just-outside value, place) for every bound under `node`;
    `place(value)` is the whole document with `value` at `path`."""
    node = _resolved(schema, node)
    title = node.get("title")
    if node.get("type") == "object" and title not in seen:
        base = OBJECTS.get(title, {})
        for key, child in node.get("properties", {}).items():
            beside = BESIDE.get((title, key), {})

            def put(value, key=key, beside=beside, base=base):
                return place({**copy.deepcopy(base), **beside, key: value})

            yield from _cases(schema, child, f"{path}.{key}".lstrip("."), put, seen | {title})
        return
    for form in node.get("anyOf", []):
        yield from _cases(schema, form, path, place, seen)
    if node.get("type") in ("integer", "number"):
        for keyword in LOWER + UPPER:
            if keyword in node:
                inside, outside = _around(node["type"], keyword, node[keyword])
                yield path, keyword, node[keyword], inside, outside, place
    if node.get("type") == "array" and _resolved(schema, node.get("items", {})).get("type") in ("integer", "number"):
        yield from _array_cases(schema, node, path, place)


def _around(kind: str, keyword: str, bound: float) -> tuple[float, float]:
    """The values just inside and just outside a bound: the next integer, or the next float."""
    down = keyword in UPPER  # an upper bound is left downwards
    if kind == "integer":
        step = -1 if down else 1
        inside = bound if not keyword.startswith("exclusive") else bound + step
        return inside, inside - step
    toward = -math.inf if down else math.inf
    if keyword.startswith("exclusive"):
        return math.nextafter(bound, toward), bound
    return bound, math.nextafter(bound, -toward)


def _array_cases(schema: dict, node: dict, path: str, place: Place) -> Iterator[tuple]:
    items = _resolved(schema, node["items"])
    pair = node.get("minItems") == node.get("maxItems") == 2  # the [low, high] shorthand of a searched float
    for keyword in LOWER + UPPER:
        if keyword not in items:
            continue
        inside, outside = _around(items["type"], keyword, items[keyword])
        if pair:  # the bound is an end's: the low end for a lower bound, the high end for an upper one
            other = 0.5 if keyword in LOWER else (items.get("minimum") or 1e-6)

            def put(value, lower=keyword in LOWER, other=other):
                return place([value, other] if lower else [other, value])
        else:

            def put(value):
                return place([value])

        yield path, keyword, items[keyword], inside, outside, put
    valid = items.get("minimum", 1)
    for keyword, size in (("minItems", node.get("minItems")), ("maxItems", node.get("maxItems"))):
        if size is None or pair:
            continue
        sizes = (size, size - 1) if keyword == "minItems" else (size, size + 1)
        if node.get("uniqueItems"):
            lists = [list(range(valid, valid + n)) for n in sizes]
        else:
            lists = [[valid] * n for n in sizes]
        yield path, keyword, size, lists[0], lists[1], place


def _all_cases() -> list:
    cases = []
    for kind, model, base in (("spec", SearchSpec, SPEC), ("train", TrainConfig, TRAIN)):
        schema = json_schema(kind)

        def root(value, base=base):
            return value

        for path, keyword, bound, inside, outside, place in _cases(schema, schema, "", root):
            case = (kind, model, path, keyword, bound, place(inside), place(outside))
            cases.append(pytest.param(*case, id=f"{kind}:{path}:{keyword}={bound}"))
    return cases


CASES = _all_cases()


def test_the_walk_finds_the_bounds_of_every_kind_of_field():
    ids = {case.id for case in CASES}
    for expected in (
        "spec:trials_per_depth:maximum=100000",  # a bare field
        "spec:depths:minimum=1",  # a list's items
        "spec:depths:maximum=32",
        "spec:space.units:maxItems=256",  # a union's list form
        "spec:space.units.low:maximum=4096",  # a union's object form
        "spec:space.units.choices:minimum=1",
        "spec:space.lr:exclusiveMinimum=0",  # a union's number form and its [low, high] shorthand
        "spec:space.dropout:exclusiveMaximum=1",
        "spec:space.batch_size:maximum=65536",
        "spec:evaluation.seeds:maximum=1000",
        "train:model.units:maxItems=32",
        "train:model.units:maximum=4096",
    ):
        assert expected in ids, expected
    assert len(CASES) > 80


def _schema_accepts(kind: str, document: dict) -> bool:
    return not list(Draft202012Validator(json_schema(kind)).iter_errors(document))


def _loader_error(model, document: dict) -> str | None:
    try:
        parse(model, document, source="spec.yaml")
    except ConfigError as exc:
        return str(exc).removeprefix("spec.yaml: ")
    return None


@pytest.mark.parametrize("kind, model, path, keyword, bound, inside, outside", CASES)
def test_each_bound_of_the_schema_is_the_bound_the_loader_enforces(kind, model, path, keyword, bound, inside, outside):
    assert _schema_accepts(kind, inside), f"the schema refuses {path} just inside its {keyword} {bound}"
    assert _loader_error(model, inside) is None, _loader_error(model, inside)

    assert not _schema_accepts(kind, outside), f"the schema accepts {path} just outside its {keyword} {bound}"
    message = _loader_error(model, outside)
    assert message is not None, f"the loader accepts {path} just outside its {keyword} {bound}"
    assert len(message.splitlines()) == 1 and message.startswith(path), message
    # The message says what is allowed: the bound itself, or in words for a bound of 1.
    words = f"{bound:g}" if isinstance(bound, float) else str(bound)
    ones = ("positive", "non-empty", "at least one")
    assert words in message or (bound == 1 and any(word in message for word in ones)), message
