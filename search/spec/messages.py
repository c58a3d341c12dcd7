"""One line for a pydantic ValidationError: the field path, the bad value and what would be valid.

`describe` walks the model class along each error's location, so that it knows the field's
type and bounds: an unknown key gets a did-you-mean from the field names at that level, a
wrong type says which type was expected, a bound says the whole allowed range, and a union
field (`list[int] | IntRange | MatchedUnits`) reports the branch the value was meant for, or
lists every valid form when the value fits none.
"""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from stacktune.datasets.errors import clip, shown

# (model class, field name) -> the valid forms of a union field, in words.
Hints = dict[tuple[type, str], str]

_TYPE_ERRORS = frozenset(
    {
        "model_type",
        "model_attributes_type",
        "dict_type",
        "list_type",
        "tuple_type",
        "set_type",
        "int_type",
        "int_parsing",
        "int_parsing_size",
        "int_from_float",
        "float_type",
        "float_parsing",
        "string_type",
        "bool_type",
        "bool_parsing",
        "none_required",
        "literal_error",
        "is_instance_of",
    }
)
_BOUND_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_SHOWN = 60  # characters of a bad value quoted in a message
_LONGEST = 1000  # characters of a whole message; anything longer is cut
# Every character str.splitlines() breaks at, with the spaces around it.
_LINE_BREAKS = re.compile(r"\s*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+\s*")


@dataclass
class _Where:
    """What a location means in the model: the shown path and the type found there."""

    path: list[str]
    annotation: Any = None  # the expected type at the location; None when unknown
    info: FieldInfo | None = None  # set when the location ends on a model field
    parent: type[BaseModel] | None = None  # the model whose keys the last part indexes
    union: tuple | None = None  # (loc index of the tag, path length, owner model, field, union type)
    constraints: tuple = ()  # the bounds an `Annotated[int, Field(ge=..., le=...)]` found there puts on it


def describe(
    error: ValidationError, model: type[BaseModel] | None = None, data: Any = None, hints: Hints | None = None
) -> str:
    """The one-line message for the most useful of `error`'s problems (unknown keys first)."""
    errors = error.errors(include_url=False)
    if not errors:
        return "config: invalid"
    walked = [(e, _walk(model, e["loc"])) for e in errors]
    chosen = next(((e, w) for e, w in walked if e["type"] == "extra_forbidden" and w.union is None), None)
    chosen = chosen or _type_before_bound(walked)
    if chosen[1].union is not None:
        text = _describe_union(chosen, walked, data, hints or {})
    else:
        text = _describe_one(*chosen, data)
    return clip(one_line(text), _LONGEST)


def _type_before_bound(walked: list) -> tuple:
    """The first problem, except that a list item of the wrong type is named before an item of the same list out of
    range: a value that is not even a number says more than one that is too large."""
    first, _ = walked[0]
    loc = first["loc"]
    if first["type"] in _BOUND_ERRORS and loc and isinstance(loc[-1], int):
        return next(((e, w) for e, w in walked if e["loc"][:-1] == loc[:-1] and e["type"] in _TYPE_ERRORS), walked[0])
    return walked[0]


def one_line(text: str) -> str:
    """`text` with every line break (and the spaces around it) turned into one space."""
    return _LINE_BREAKS.sub(" ", text).strip()


def _walk(model: type[BaseModel] | None, loc: tuple) -> _Where:
    where = _Where(path=[])
    annotation: Any = model
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        current = _strip_none(_bare(annotation))
        if _is_model(current):
            where.parent = current
            field = current.model_fields.get(part) if isinstance(part, str) else None
            where.info = field
            annotation = field.annotation if field is not None else None
            where.path.append(_key(part))
        elif _is_union(current) and isinstance(part, str):
            if where.union is None:
                owner = where.parent if where.info is not None else None
                field_name = where.path[-1] if where.path else None
                where.union = (i, len(where.path), owner, field_name, current)
            annotation = _member(current, part)
        elif get_origin(current) in (list, tuple, set, frozenset):
            args = get_args(current)
            annotation = args[0] if args else None
            where.info = None
            where.path.append(_key(part))
        elif get_origin(current) is dict:
            key_type, value_type = (get_args(current) + (None, None))[:2]
            where.info = None
            where.path.append(_key(part))
            if i + 1 < len(parts) and parts[i + 1] == "[key]":
                annotation = key_type
                i += 1
            else:
                annotation = value_type
        elif isinstance(part, str) and (part == "[key]" or part.startswith("function-")):
            pass  # a validator's wrapper or a dict key marker: not part of the user's path
        else:
            where.info = None
            annotation = None
            where.path.append(_key(part))
        i += 1
    where.constraints = _constraints(annotation)
    where.annotation = _bare(annotation)
    return where


def _describe_one(error: dict, where: _Where, data: Any = None) -> str:
    kind, value, loc = error["type"], error.get("input"), error["loc"]
    at = ".".join(where.path) or "config"
    if kind in ("extra_forbidden", "invalid_key"):
        key = value if kind == "invalid_key" else (loc[-1] if loc else "")
        if kind == "invalid_key":
            at = ".".join(where.path[:-1] + [_key(key)])
        given = _lookup(data, where.path[:-1])
        taken = {str(k) for k in given} if isinstance(given, dict) else set()
        return f"{at}: {_unknown_key(key, where.parent, taken)}"
    if kind == "missing":
        form = _form(where.annotation)
        return f"{at}: required key is missing" + (f"; expected {form}" if form else "")
    if kind in _BOUND_ERRORS:
        allowed = _bounds(where, error.get("ctx") or {})
        if allowed:
            return f"{at}: expected {allowed}, got {_show(value)}"
    if kind == "string_too_long":
        most = (error.get("ctx") or {}).get("max_length")
        return f"{at}: expected a string of at most {most} characters, got {_show(value)} ({len(value)} characters)"
    if kind in ("too_short", "too_long"):
        return f"{at}: expected {_length(where, error.get('ctx') or {})}, got {_show(value)}"
    if kind == "finite_number":
        return f"{at}: expected a finite number, got {_show(value)}"
    if kind in _TYPE_ERRORS:
        form = _form(where.annotation)
        if form:
            return f"{at}: expected {form}, got {_show(value)}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    quoted = _show(value)
    if isinstance(value, (dict, BaseModel)) or "got " in message or quoted in message:
        return f"{at}: {message}"
    return f"{at}: {message}, got {quoted}"


def _describe_union(chosen: tuple, walked: list, data: Any, hints: Hints) -> str:
    """A union field's problem: the branch the value was meant for, else every valid form."""
    error, where = chosen
    tag_index, path_length, owner, field_name, union = where.union
    root = error["loc"][:tag_index]
    branches: dict[str, list] = {}
    for e, w in walked:
        if len(e["loc"]) > tag_index and e["loc"][:tag_index] == root and w.union is not None:
            branches.setdefault(e["loc"][tag_index], []).append((e, w))
    at_root = [e["input"] for group in branches.values() for e, _ in group if len(e["loc"]) == tag_index + 1]
    value = at_root[0] if at_root else _lookup(data, where.path[:path_length])
    tag = _branch_for(value, branches, union)
    if tag is not None:
        group = branches[tag]
        e, w = next((item for item in group if item[0]["type"] == "extra_forbidden"), None) or _type_before_bound(group)
        if not (len(e["loc"]) == tag_index + 1 and e["type"] in _TYPE_ERRORS):
            return _describe_one(e, w, data)
    at = ".".join(where.path[:path_length]) or "config"
    forms = hints.get((owner, field_name)) or _form(union) or "another value"
    return f"{at}: expected {forms}, got {_show(value)}"


def _branch_for(value: Any, branches: dict[str, list], union: Any) -> str | None:
    """The union member a value was evidently meant as: by its keys, or by being a list or scalar."""
    members = {tag: _member(union, tag) for tag in branches}
    if isinstance(value, dict):
        keys = {str(key) for key in value}
        scored = [
            (len(keys & set(member.model_fields)), -len(branches[tag]), tag)
            for tag, member in members.items()
            if _is_model(member)
        ]
        best = max(scored, default=None)
        return best[2] if best and best[0] > 0 else None
    if isinstance(value, (list, tuple)):
        return next((tag for tag, m in members.items() if get_origin(_bare(m)) in (list, tuple, set)), None)
    wanted = {bool: bool, int: int, float: float, str: str}.get(type(value))
    return next((tag for tag, m in members.items() if wanted is not None and m is wanted), None)


def _unknown_key(key: Any, parent: type[BaseModel] | None, taken: set[str]) -> str:
    """`unknown key` with the closest valid key (one not yet given first), else the list of valid keys."""
    valid = list(parent.model_fields) if parent is not None else []
    if isinstance(key, str) and valid:
        lowered = {name.lower(): name for name in valid}
        close = [lowered[m] for m in difflib.get_close_matches(key.lower(), list(lowered), n=3, cutoff=0.6)]
        if close:  # a key not yet given is the likelier meaning: `lgo` next to `low` is `log`
            return f"unknown key; did you mean {next((m for m in close if m not in taken), close[0])!r}?"
    if valid:
        return f"unknown key; valid keys are {', '.join(valid)}"
    return "unknown key"


def _bounds(where: _Where, ctx: dict) -> str | None:
    """The whole allowed range of a bounded number, e.g. `an integer from 0 to 1000`."""
    limits = {name: ctx[name] for name in ("gt", "ge", "lt", "le") if name in ctx}
    for item in [*(where.info.metadata if where.info is not None else ()), *where.constraints]:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                limits[name] = getattr(item, name)
    integer = _strip_none(where.annotation) is int
    low, high = limits.get("ge", limits.get("gt")), limits.get("le", limits.get("lt"))
    if integer:
        if "gt" in limits and "ge" not in limits:
            low = int(low) + 1
        if "lt" in limits and "le" not in limits:
            high = int(high) - 1
        if low is not None and high is not None:
            return f"an integer from {_num(low)} to {_num(high)}"
        if low is not None:
            return f"an integer of at least {_num(low)}"
        return f"an integer of at most {_num(high)}" if high is not None else None
    if low is not None and high is not None:
        opening, closing = ("[" if "ge" in limits else "("), ("]" if "le" in limits else ")")
        return f"a number in {opening}{_num(low)}, {_num(high)}{closing}"
    if low is not None:
        return f"a number {'>=' if 'ge' in limits else '>'} {_num(low)}"
    return f"a number {'<=' if 'le' in limits else '<'} {_num(high)}" if high is not None else None


def _length(where: _Where, ctx: dict) -> str:
    low, high = ctx.get("min_length"), ctx.get("max_length")
    for item in [*(where.info.metadata if where.info is not None else ()), *where.constraints]:
        if isinstance(item, annotated_types.MinLen):
            low = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            high = item.max_length
    args = get_args(_strip_none(where.annotation))
    items = _plural(args[0]) if args else "items"
    if low is not None and high is not None:
        return f"a list of {low} to {high} {items}"
    if low == 1:
        return f"a non-empty list of {items}"
    return f"a list of at least {low} {items}" if low is not None else f"a list of at most {high} {items}"


def _form(annotation: Any) -> str | None:
    """What a type looks like to someone writing YAML: `an integer`, `a list of numbers`, ..."""
    annotation = _bare(annotation)
    if annotation is None or annotation is Any:
        return None
    if annotation is type(None):
        return "null"
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    if _is_model(annotation):
        return "a mapping {" + ", ".join(annotation.model_fields) + "}"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return _either([repr(arg) for arg in args])
    if origin in (list, tuple, set, frozenset):
        return f"a list of {_plural(args[0]) if args else 'values'}"
    if origin is dict:
        return "a mapping"
    if _is_union(annotation):
        forms = [_form(arg) for arg in args]
        return _either(forms) if all(forms) else None
    return None


def _plural(annotation: Any) -> str:
    annotation = _bare(annotation)
    names = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
    return names.get(annotation) or ("mappings" if _is_model(annotation) else "values")


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"


def _show(value: Any) -> str:
    """A bad value as quoted in a message: YAML's words for null and booleans, cut to a readable length.

    Never builds the whole repr of a huge or deeply nested value (a YAML alias bomb is small in memory but not
    once written out): only as much as the message shows is looked at.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown(value, _SHOWN)


def _key(part: Any) -> str:
    """A location's part as shown in a path: a key from the user's file, cut to a readable length."""
    return clip(str(part), _SHOWN)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = next((v for k, v in data.items() if str(k) == part), None)
        elif isinstance(data, (list, tuple)) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _bare(annotation: Any) -> Any:
    """`Annotated[X, ...]` as X: the type that the constraints are put on."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _constraints(annotation: Any) -> tuple:
    """The constraints (annotated_types.Ge, MaxLen, ...) of an `Annotated[X, Field(...)]`; () for a bare type."""
    if get_origin(annotation) is not Annotated:
        return ()
    found: list = []
    for item in get_args(annotation)[1:]:
        found += item.metadata if isinstance(item, FieldInfo) else [item]
    return tuple(found)


def _strip_none(annotation: Any) -> Any:
    """`X | None` as X, and `A | B | None` as `A | B` (pydantic tags only the non-null members)."""
    if not _is_union(annotation):
        return annotation
    members = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(members) == len(get_args(annotation)):
        return annotation
    return members[0] if len(members) == 1 else Union[tuple(members)]


def _type_name(annotation: Any) -> str:
    """The name pydantic tags a union member with in an error's location: `int`, `list[constrained-int]`, ..."""
    if get_origin(annotation) is Annotated:
        base = get_args(annotation)[0]
        constrained = base in (int, float, str) and _constraints(annotation)
        return f"constrained-{_type_name(base)}" if constrained else _type_name(base)
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__name__
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is not None and hasattr(origin, "__name__"):
        return f"{origin.__name__}[{','.join(_type_name(arg) for arg in args)}]"
    return str(annotation)


def _member(union: Any, tag: str) -> Any:
    """The member of `union` that pydantic's location tag names (`IntRange`, `list[int]`, ...)."""
    if tag.startswith("function-") and "[" in tag:
        tag = tag[tag.index("[") + 1 : -1].rsplit(", ", 1)[-1]
    wanted = tag.replace(" ", "")
    return next((arg for arg in get_args(union) if _type_name(arg).replace(" ", "") == wanted), None)
