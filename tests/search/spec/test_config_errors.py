"""Every wrong spec, config or CSV gives a ConfigError of one line naming the field, the value and what is valid.

The examples pin the messages; the property tests feed arbitrary YAML-like values, mutated
specs and random CSV files through the same functions the CLI uses and check that nothing
but a one-line ConfigError comes out.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from pathlib import Path
from typing import get_args

import pytest
import yaml
from conftest import yaml_bomb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from stacktune.datasets import DatasetSpec
from stacktune.search.errors import ConfigError
from stacktune.search.spec.loading import describe_validation_error, load_data, load_spec, load_yaml, parse
from stacktune.search.spec.schema import SearchSpec, TrainConfig

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SPEC = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
TRAIN = {"dataset": {"name": "sine", "window": 8}, "model": {"units": [8]}, "train": {"lr": 0.01}}
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _with(base: dict, path: str, value) -> dict:
    """A deep copy of `base` with the dotted `path` set to `value` (missing sections are created)."""
    data = copy.deepcopy(base)
    *sections, leaf = path.split(".")
    target = data
    for section in sections:
        if not isinstance(target.get(section), dict):
            target[section] = {}
        target = target[section]
    target[leaf] = value
    return data


def _without(base: dict, key: str) -> dict:
    return {k: v for k, v in base.items() if k != key}


def _error(model, data) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(model, data, source="spec.yaml")
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith("spec.yaml: "), message
    return message.removeprefix("spec.yaml: ")


# --- the messages ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (_with(SPEC, "space.unit", [8]), "space.unit: unknown key; did you mean 'units'?"),
        (
            {**_without(SPEC, "trials_per_depth"), "trails_per_depth": 3},
            "trails_per_depth: unknown key; did you mean 'trials_per_depth'?",
        ),
        (_with(SPEC, "dataset.windw", 3), "dataset.windw: unknown key; did you mean 'window'?"),
        (_with(SPEC, "evaluation.Seeds", 3), "evaluation.Seeds: unknown key; did you mean 'seeds'?"),
        (
            _with(SPEC, "space.lr", {"low": 1e-4, "high": 1e-2, "lgo": True}),
            "space.lr.lgo: unknown key; did you mean 'log'?",
        ),
        (_with(SPEC, "sampler.zzz", 1), "sampler.zzz: unknown key; valid keys are kind, n_startup_trials"),
        ({**SPEC, 1: 2}, "1: unknown key; valid keys are name,"),
    ],
)
def test_unknown_keys_suggest_the_closest_valid_key(data, expected):
    assert _error(SearchSpec, data).startswith(expected)


def test_unknown_key_wins_over_the_missing_key_it_misspells():
    data = _with(TRAIN, "model", {"unit": [8]})
    assert _error(TrainConfig, data) == "model.unit: unknown key; did you mean 'units'?"


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("trials_per_depth", "many", "trials_per_depth: expected an integer, got 'many'"),
        ("trials_per_depth", 2.5, "trials_per_depth: expected an integer, got 2.5"),
        ("depths", 3, "depths: expected a list of integers, got 3"),
        ("depths", ["a"], "depths.0: expected an integer, got 'a'"),
        ("depths", [], "depths: expected a non-empty list of integers, got []"),
        ("name", 3, "name: expected a string, got 3"),
        ("name", None, "name: expected a string, got null"),
        ("evaluation", "x", "evaluation: expected a mapping {seeds, max_seeds, top_k, confidence, origins}, got 'x'"),
        ("sampler.kind", "grid", "sampler.kind: expected 'tpe' or 'random', got 'grid'"),
        ("resources.max_concurrent", "two", "resources.max_concurrent: expected an integer or null, got 'two'"),
        ("baseline", 5, "baseline: expected a mapping {units, lr, dropout, batch_size} or null, got 5"),
    ],
)
def test_wrong_types_name_the_expected_type_and_the_value(path, value, expected):
    assert _error(SearchSpec, _with(SPEC, path, value)) == expected


def test_a_missing_key_says_what_it_should_be():
    assert _error(SearchSpec, _without(SPEC, "name")) == "name: required key is missing; expected a string"


def test_a_list_that_is_not_a_mapping_is_reported_for_the_whole_config():
    assert _error(SearchSpec, [1, 2]).startswith("config: expected a mapping {name, dataset, depths,")


UNITS_FORMS = (
    "a list of choices like [16, 32, 64], a range {low, high, step}, {choices: [...], shared: true} or {params: N}"
)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("space.units", "abc", f"space.units: expected {UNITS_FORMS}, got 'abc'"),
        ("space.units", 3.5, f"space.units: expected {UNITS_FORMS}, got 3.5"),
        ("space.units", {"lo": 8}, f"space.units: expected {UNITS_FORMS}, got {{'lo': 8}}"),
        ("space.units", [8, "x"], "space.units.1: expected an integer, got 'x'"),
        ("space.units", {"low": 8}, "space.units.high: required key is missing; expected an integer"),
        ("space.units", {"params": 3}, "space.units.params: expected an integer from 16 to 1000000000, got 3"),
        ("space.units", {"params": "x"}, "space.units.params: expected an integer, got 'x'"),
        ("space.lr", "abc", "space.lr: expected a positive number, a range [low, high] or {low, high, log}, got 'abc'"),
        ("space.lr", {"low": 1e-3}, "space.lr.high: required key is missing; expected a number"),
        (
            "space.dropout",
            "no",
            "space.dropout: expected a number in [0, 1), a range [low, high] or {low, high}, got 'no'",
        ),
        (
            "space.dropout",
            None,
            "space.dropout: expected a number in [0, 1), a range [low, high] or {low, high}, got null",
        ),
        (
            "space.batch_size",
            "x",
            "space.batch_size: expected a list of choices like [32, 64], a single integer or null, got 'x'",
        ),
        ("dataset.target", 3, "dataset.target: expected a column name or a list of column names, got 3"),
    ],
)
def test_union_fields_list_their_valid_forms_or_report_the_intended_one(path, value, expected):
    data = _with(SPEC, path, value)
    if path.startswith("dataset."):
        data["dataset"] = {"csv": "d.csv", "window": 4, "target": value}
    assert _error(SearchSpec, data) == expected


@pytest.mark.parametrize(
    "path, value, needles",
    [
        ("space.lr", [0.1, 0.01], ["space.lr", "low must be below high", "[0.1, 0.01]"]),
        ("space.lr", [0.1], ["space.lr", "a range is [low, high]", "[0.1]"]),
        ("space.lr", [0.0, 0.1], ["space.lr", "log range needs low > 0", "0.0"]),
        ("space.dropout", [0.5, 0.1], ["space.dropout", "low must be below high", "[0.5, 0.1]"]),
        ("space.dropout", [0.5, 0.5], ["space.dropout", "low must be below high"]),
        ("space.units", {"low": 64, "high": 8}, ["space.units", "low must not exceed high", "64..8"]),
        ("space.units", {"low": 8, "high": 64, "log": True, "step": 8}, ["space.units", "a log range takes no step"]),
        ("space.weight_decay", [1e-4, math.inf], ["space.weight_decay", "finite bounds", "inf"]),
    ],
)
def test_empty_or_inverted_ranges(path, value, needles):
    message = _error(SearchSpec, _with(SPEC, path, value))
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    "model, path, value, expected",
    [
        (SearchSpec, "depths", [0, 2], "depths: a depth must lie in 1..32, got 0"),
        (SearchSpec, "depths", [-3], "depths: a depth must lie in 1..32, got -3"),
        (SearchSpec, "depths", [33], "depths: a depth must lie in 1..32, got 33"),
        (SearchSpec, "depths", [2, 2], "depths: depths must not repeat, got [2, 2]"),
        (SearchSpec, "trials_per_depth", 0, "trials_per_depth: expected an integer from 1 to 100000, got 0"),
        (SearchSpec, "space.units", [0, 8], "space.units: units choices must be positive integers, got [0, 8]"),
        (SearchSpec, "space.units", [], "space.units: give at least one units choice, got []"),
        (SearchSpec, "baseline.units", 0, "baseline.units: expected an integer from 1 to 4096, got 0"),
        (TrainConfig, "model.units", [8, 0], "model.units: every layer needs at least 1 unit, got 0"),
        (TrainConfig, "model.units", [8] * 33, "model.units: expected a list of 1 to 32 integers, got [8, 8,"),
        (SearchSpec, "space.lr", 0, "space.lr: the learning rate must be a finite number > 0, got 0.0"),
        (SearchSpec, "space.lr", -1e-3, "space.lr: the learning rate must be a finite number > 0, got -0.001"),
        (SearchSpec, "space.lr", math.inf, "space.lr: the learning rate must be a finite number > 0, got inf"),
        (SearchSpec, "baseline.lr", -1, "baseline.lr: expected a number in (0, 10], got -1"),
        (TrainConfig, "train.lr", math.inf, "train.lr: expected a "),
        (
            SearchSpec,
            "evaluation.seeds",
            100_000,
            "evaluation.seeds: expected a number of seeds from 0 to 1000, or auto, got 100000",
        ),
        (
            SearchSpec,
            "evaluation.seeds",
            -1,
            "evaluation.seeds: expected a number of seeds from 0 to 1000, or auto, got -1",
        ),
        (SearchSpec, "evaluation.confidence", 1.0, "evaluation.confidence: expected a number in (0.5, 1), got 1.0"),
        (SearchSpec, "space.dropout", math.nan, "space.dropout: dropout must lie in [0, 1), got nan"),
        (
            SearchSpec,
            "space.weight_decay",
            -0.1,
            "space.weight_decay: weight decay must be a finite number >= 0, got -0.1",
        ),
        (
            SearchSpec,
            "resources.cpus_per_trial",
            math.inf,
            "resources.cpus_per_trial: expected a number in (0, 1024], got inf",
        ),
        (TrainConfig, "model.forget_bias", math.nan, "model.forget_bias: expected a finite number, got nan"),
        (TrainConfig, "train.weight_decay", math.inf, "train.weight_decay: expected a finite number, got inf"),
    ],
)
def test_values_out_of_range_say_the_allowed_range(model, path, value, expected):
    assert _error(model, _with(SPEC if model is SearchSpec else TRAIN, path, value)).startswith(expected)


@pytest.mark.parametrize("lr", [0, -0.5, math.nan])
def test_a_learning_rate_of_zero_or_less_names_the_value(lr):
    message = _error(TrainConfig, _with(TRAIN, "train.lr", lr))
    assert message.startswith("train.lr: expected a ") and message.endswith(f"got {lr}")


def test_too_many_seeds_from_the_command_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    with pytest.raises(
        ConfigError, match=r"evaluation\.seeds: expected a number of seeds from 0 to 1000, or auto, got 100000$"
    ):
        load_spec(spec, overrides={"evaluation.seeds": 100_000})


def test_unknown_dataset_lists_the_known_ones():
    message = _error(SearchSpec, _with(SPEC, "dataset.name", "sunspot"))
    assert message.startswith("dataset.name: unknown dataset 'sunspot'; known datasets: ")
    assert "sunspots" in message and "sine" in message


@pytest.mark.parametrize("name", ["has space", "a/b", "", "-lead", "ünï", "x" * 101, "tab\there", "two\nlines"])
def test_names_that_cannot_be_experiment_names(name):
    message = _error(SearchSpec, {**SPEC, "name": name})
    assert message.startswith("name: use letters, digits, '.', '_' and '-' only, got ")
    assert repr(name)[:50] in message


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "storage",
            "garbage",
            "storage: expected a database URL like postgresql://user@host/db or sqlite:///optuna.db, got 'garbage'",
        ),
        (
            "dataset",
            {"csv": "a\x00b.csv", "target": "y"},
            "dataset: `csv` cannot contain a NUL character, got 'a\\x00b.csv'",
        ),
    ],
)
def test_paths_and_urls_that_cannot_work(path, value, expected):
    assert _error(SearchSpec, {**SPEC, path: value}) == expected


def test_messages_without_the_model_still_fit_on_one_line():
    try:
        SearchSpec.model_validate(_with(SPEC, "space.units", "two\nlines"))
    except ValidationError as exc:
        message = describe_validation_error(exc)
    assert len(message.splitlines()) == 1 and message.startswith("space.units")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: x\nwhen: 2024-13-45\n", "not valid YAML"),
        ("n: " + "9" * 5000 + "\n", "not valid YAML"),
        ("a: " + "[" * 5000 + "\n", "not valid YAML"),
        (b"name: \xff\xfe\n", "not UTF-8 text (byte 0xff at offset 6)"),
        ("- a\n- b\n", "expected a mapping of settings, got list"),
    ],
)
def test_unreadable_yaml_is_one_line(tmp_path, text, needle):
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        load_yaml(SearchSpec, path)
    assert str(caught.value).startswith(f"{path}: ") and needle in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


# --- bounds: every size has a limit, and a value past it gets the usual one line ----------------------------------

ADDING = {"name": "adding"}


@pytest.mark.parametrize(
    "model, path, value, expected",
    [
        (SearchSpec, "dataset.window", 10**9, "dataset.window: expected an integer from 1 to 10000, got 1000000000"),
        (SearchSpec, "dataset.horizon", 10**6, "dataset.horizon: expected an integer from 1 to 10000, got 1000000"),
        (SearchSpec, "dataset.length", 10**9, "dataset.length: expected an integer from 1 to 1000000, got 1000000000"),
        (SearchSpec, "dataset.csv", "d" * 5000, "dataset.csv: expected a string of at most 4096 characters, got 'ddd"),
        (SearchSpec, "space.units", [8, 10**9], "space.units: a layer has at most 4096 units, got 1000000000"),
        (SearchSpec, "space.units", list(range(1, 301)), "space.units: give at most 256 units choices, got 300"),
        (SearchSpec, "space.units", {"low": 8, "high": 10**6}, "space.units.high: expected an integer from 1 to 4096"),
        (
            SearchSpec,
            "space.units",
            {"low": 8, "high": 64, "step": 10**5},
            "space.units.step: expected an integer from",
        ),
        (SearchSpec, "space.units", {"choices": [8, 5000]}, "space.units.choices: a layer has at most 4096 units, got"),
        (
            SearchSpec,
            "space.units",
            {"params": 10**12},
            "space.units.params: expected an integer from 16 to 1000000000, got 1000000000000",
        ),
        (
            SearchSpec,
            "space.batch_size",
            [32, 10**7],
            "space.batch_size: a batch holds 1 to 65536 samples, got 10000000",
        ),
        (SearchSpec, "space.batch_size", 0, "space.batch_size: a batch holds 1 to 65536 samples, got 0"),
        (SearchSpec, "space.batch_size", [], "space.batch_size: give at least one batch_size choice, got []"),
        (
            SearchSpec,
            "trials_per_depth",
            10**9,
            "trials_per_depth: expected an integer from 1 to 100000, got 1000000000",
        ),
        (SearchSpec, "train.epochs", 10**6, "train.epochs: expected an integer from 1 to 100000, got 1000000"),
        (SearchSpec, "train.batch_size", 10**6, "train.batch_size: expected an integer from 1 to 65536, got 1000000"),
        (SearchSpec, "train.checkpoint_every", 10**6, "train.checkpoint_every: expected an integer from 0 to 100000"),
        (SearchSpec, "sampler.n_startup_trials", 10**6, "sampler.n_startup_trials: expected an integer from 0 to"),
        (SearchSpec, "pruning.grace_epochs", 10**6, "pruning.grace_epochs: expected an integer from 1 to 100000"),
        (SearchSpec, "resources.max_concurrent", 10**6, "resources.max_concurrent: expected an integer from 1 to"),
        (SearchSpec, "resources.gpus_per_trial", 1000, "resources.gpus_per_trial: expected a number in [0, 64], got"),
        (SearchSpec, "evaluation.max_seeds", 10**6, "evaluation.max_seeds: expected an integer from 2 to 1000"),
        (SearchSpec, "baseline.units", 10**6, "baseline.units: expected an integer from 1 to 4096, got 1000000"),
        (SearchSpec, "baseline.batch_size", 10**6, "baseline.batch_size: expected an integer from 1 to 65536, got"),
        (SearchSpec, "storage", "sqlite:///" + "x" * 5000, "storage: expected a string of at most 4096 characters"),
        (TrainConfig, "model.units", [8, 10**6], "model.units: a layer has at most 4096 units, got 1000000"),
        (TrainConfig, "train.batch_size", 10**6, "train.batch_size: expected an integer from 1 to 65536, got 1000000"),
        (TrainConfig, "train.epochs", 10**6, "train.epochs: expected an integer from 1 to 100000, got 1000000"),
    ],
)
def test_sizes_past_their_limit_name_the_field_and_the_limit(model, path, value, expected):
    data = _with(SPEC if model is SearchSpec else TRAIN, path, value)
    if path == "dataset.length":
        data["dataset"] = {"name": "sine", "window": 4, "length": value}
    elif path == "dataset.csv":
        data["dataset"] = {"csv": value, "target": "y", "window": 4}
    message = _error(model, data)
    assert message.startswith(expected) and len(message) < 300, message


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ({**ADDING, "seq_len": 10**6}, "dataset.seq_len: expected an integer from 2 to 10000, got 1000000"),
        ({**ADDING, "length": 100_000, "seq_len": 1000}, "`length` x `seq_len` of 'adding' may be at most 10000000"),
        ({"csv": "d.csv", "target": [f"c{i}" for i in range(10_001)]}, "`target` may name at most 10000 columns"),
        ({"csv": "d.csv", "target": "y", "features": ["a"] * 10_001}, "dataset.features: expected a list of 1 to"),
    ],
)
def test_dataset_sizes_past_their_limit(dataset, expected):
    assert expected in _error(SearchSpec, {**SPEC, "dataset": dataset})


def test_sizes_at_their_limit_are_accepted():
    spec = _with(SPEC, "space.units", {"low": 4096, "high": 4096})
    spec["dataset"] = {"name": "sine", "window": 10_000, "horizon": 10_000, "length": 1_000_000}
    spec.update(trials_per_depth=100_000, train={"epochs": 100_000, "batch_size": 65_536})
    parsed = SearchSpec.model_validate(spec)
    assert parsed.dataset.window == 10_000 and parsed.space.units.high == 4096


def _spec_file(tmp_path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _refused(path: Path, *needles: str, seconds: float = 5.0) -> str:
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert time.monotonic() - start < seconds, f"took {time.monotonic() - start:.1f} s"
    assert len(message.splitlines()) == 1 and message.startswith(f"{path}: ") and len(message) < 400, message
    for needle in needles:
        assert needle in message, message
    return message


BASE = "depths: [1, 2]\ntrials_per_depth: 2\n"


@pytest.mark.serial
@pytest.mark.parametrize(
    "text",
    [
        yaml_bomb("a") + BASE + "dataset: {name: sine, window: 4}\nname: *a9\n",
        yaml_bomb("b") + BASE + "name: demo\ndataset: {name: sine, window: 4, source: *b9}\n",
        yaml_bomb("c") + BASE + "name: demo\ndataset: {name: sine, window: 4}\nspace: {units: *c9}\n",
        "m0: &m0 {x: 1, y: 2}\n"
        + "".join(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n" for i in range(1, 9))
        + BASE
        + "name: demo\ndataset: {name: sine, window: 4}\n",
    ],
    ids=["under-name", "under-dataset-source", "under-space-units", "merge-keys"],
)
def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path, text):
    _refused(_spec_file(tmp_path, text), "too many YAML nodes once aliases are expanded (more than 20000)", seconds=2)


@pytest.mark.serial
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    _refused(_spec_file(tmp_path, "name: &n [*n]\n" + BASE), "a YAML alias refers to a node that contains it")


@pytest.mark.serial
def test_a_document_of_too_many_nodes_is_refused_while_it_is_read(tmp_path):
    path = _spec_file(tmp_path, "name: demo\n" + BASE + "metrics: [" + ", ".join(["1"] * 200_000) + "]\n")
    _refused(path, "too many YAML nodes (more than 20000)", seconds=3)


def test_a_few_aliases_are_still_read(tmp_path):
    text = "name: demo\n" + BASE + "dataset: {name: sine, window: 4}\nspace: {units: &w [8, 16], batch_size: *w}\n"
    spec = load_spec(_spec_file(tmp_path, text))
    assert spec.space.units == [8, 16] and spec.space.batch_size == [8, 16]


@pytest.mark.serial
@pytest.mark.parametrize("size", [(1 << 20) + 1, 50 << 20, 1 << 40])
def test_a_spec_file_over_the_limit_is_refused_unread(tmp_path, size):
    path = tmp_path / "spec.yaml"
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: takes no disk space
    _refused(path, f"file is {size} bytes", "over the 1 MiB limit for a spec or config file", seconds=1)


def test_a_file_without_a_size_is_read_only_up_to_the_limit():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ConfigError, match=r"^/dev/zero: file is over 1048576 bytes, over the 1 MiB limit"):
        load_yaml(SearchSpec, "/dev/zero")


def _bomb(levels: int = 9) -> list:
    value: list = ["lol"] * 10
    for _ in range(levels):
        value = [value] * 10
    return value


@pytest.mark.serial
@pytest.mark.parametrize(
    "value",
    [_bomb(), {"k": _bomb()}, "x" * 10_000_000, 10**4000, [[["deep"] * 1000] * 1000] * 1000],
    ids=["nested-lists", "mapping", "long-string", "long-integer", "wide"],
)
def test_a_huge_value_in_a_message_is_cut_without_writing_it_out(value):
    start = time.monotonic()
    message = _error(SearchSpec, {**SPEC, "name": value})
    assert time.monotonic() - start < 1 and message.startswith("name: ") and len(message) < 200, message


def test_every_message_is_cut_to_a_bounded_length():
    message = _error(SearchSpec, _with(SPEC, "dataset.name", "q" * 1_000_000))
    assert message.startswith("dataset.name: unknown dataset 'qqq") and len(message) < 400, message
    message = _error(SearchSpec, {**SPEC, "k" * 100_000: 1})
    assert "unknown key" in message and len(message) < 400, message


# --- CSV files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, needles",
    [
        ("t,x\n1,2\n", ["target column 'y' not found", "available columns: t, x"]),
        ("t,y\n1,0.5\n2,oops\n", ["column 'y'", "non-numeric value 'oops'", "line 3"]),
        ("t,y\n1,0.5\n2,nan\n", ["column 'y'", "missing value", "line 3"]),
        ("t,y\n1,0.5\n2,\n", ["column 'y'", "missing value", "line 3"]),
        ("t,y\n1,0.5\n2,-inf\n", ["column 'y'", "infinite value '-inf'", "line 3"]),
        ("t,y\n1,1e999\n", ["column 'y'", "infinite value '1e999'"]),
        ("t,y\n" + "".join(f"{i},{i}\n" for i in range(10)), ["series has 10 rows", "window 4 + horizon 1"]),
        ("", ["file is empty"]),
        ("t,y\n", ["no data rows"]),
        ("t,y\n\n\n", ["no data rows"]),
    ],
)
def test_bad_csv_files_name_the_file_and_the_problem(tmp_path, content, needles):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_data(DatasetSpec(csv="d.csv", target="y", window=4), base_dir=tmp_path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(tmp_path / "d.csv") in message, message
    for needle in needles:
        assert needle in message, message


@pytest.mark.serial
def test_a_csv_file_over_the_limit_is_refused_unread(tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "wb") as handle:
        handle.truncate((2 << 30) + 1)  # sparse: takes no disk space
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_data(DatasetSpec(csv="d.csv", target="y", window=4), base_dir=tmp_path)
    assert time.monotonic() - start < 1
    assert str(caught.value) == f"{path}: file is 2147483649 bytes (2.0 GiB), over the 2 GiB limit for a CSV file"


@pytest.mark.parametrize(
    "content, needles",
    [
        ("t,y\n1,0.5\n2," + "z" * 1_000_000 + "\n", ["column 'y' has a non-numeric value 'zzz", "...", "at line 3"]),
        (",".join(f"c{i}" for i in range(1000)) + "\n" + ",".join("1" * 1000) + "\n", ["c19 and 980 more"]),
        ("t," + "w" * 100_000 + "\n1,2\n", ["available columns: t, www", "..."]),
    ],
    ids=["huge-cell", "many-columns", "huge-header"],
)
def test_huge_csv_values_are_cut_in_the_message(tmp_path, content, needles):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_data(DatasetSpec(csv="d.csv", target="y", window=1), base_dir=tmp_path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and len(message) < 1000, message
    for needle in needles:
        assert needle in message, message


@pytest.mark.serial
def test_windows_that_would_not_fit_in_memory_are_refused_before_they_are_made():
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"window 10000 over 1000000 rows makes \d+ values, over the 500000000"):
        load_data(DatasetSpec(name="sine", window=10_000, length=1_000_000), base_dir=None)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("content", ["y\n,nan\n", "y\n,,nan\n", "y,y \nnan,1\n"])
def test_ragged_rows_and_repeated_columns_name_the_file(tmp_path, content):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(ConfigError, match="d.csv"):
        load_data(DatasetSpec(csv="d.csv", target="y", window=1), base_dir=tmp_path)


# --- properties: no input gets anything but a one-line ConfigError ---------------------------------------------


def _key_names(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """Every field name of `model` and of the models nested in it (unions included)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for outer in (field.annotation, *get_args(field.annotation)):
            for inner in (outer, *get_args(outer)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _key_names(inner, seen)
    return names


def _paths(model: type[BaseModel], prefix: tuple = ()) -> list[str]:
    """Dotted paths to every field two sections deep: `name`, `space.units`, `dataset.window`, ..."""
    out = []
    for name, field in model.model_fields.items():
        out.append(".".join(prefix + (name,)))
        for inner in (field.annotation, *get_args(field.annotation)):
            if isinstance(inner, type) and issubclass(inner, BaseModel) and len(prefix) < 1:
                out += _paths(inner, prefix + (name,))
    return sorted(set(out))


KEYS = sorted(_key_names(SearchSpec) | _key_names(TrainConfig))
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["sine", "sunspots", "tpe", "adamw", "1e-3", "nan", ".inf", "", "[1, 2]", "a\x00b", "x\ny"])
)
_keys = st.sampled_from(KEYS) | st.text(max_size=8)
VALUES = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5), max_leaves=20
)


def _one_line_or_valid(model, data, *, section: str | None = None) -> None:
    try:
        parse(model, data, source="spec.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and message.startswith("spec.yaml: "), message
        if section is not None:
            assert message.removeprefix("spec.yaml: ").startswith(section), message


@FAST
@given(st.dictionaries(_keys, VALUES, max_size=8))
def test_any_mapping_is_valid_or_one_line(data):
    _one_line_or_valid(SearchSpec, data)
    _one_line_or_valid(TrainConfig, data)


@FAST
@given(st.sampled_from(_paths(SearchSpec)), VALUES)
def test_any_value_for_a_search_key_is_valid_or_one_line_naming_its_section(path, value):
    _one_line_or_valid(SearchSpec, _with(SPEC, path, value), section=path.split(".")[0])


@FAST
@given(st.sampled_from(_paths(TrainConfig)), VALUES)
def test_any_value_for_a_train_key_is_valid_or_one_line_naming_its_section(path, value):
    _one_line_or_valid(TrainConfig, _with(TRAIN, path, value), section=path.split(".")[0])


@FAST
@given(
    st.sampled_from(_paths(SearchSpec)),
    VALUES,
    st.fixed_dictionaries(
        {
            "depths": st.none() | st.lists(st.integers(-2, 40), max_size=4),
            "trials_per_depth": st.none() | st.integers(-5, 200_000),
            "train.epochs": st.none() | st.integers(-5, 200_000),
            "evaluation.seeds": st.none() | st.integers(-5, 200_000),
            "name": st.none() | st.text(max_size=10),
        }
    ),
)
def test_a_spec_file_with_command_line_overrides_is_valid_or_one_line(tmp_path_factory, path, value, overrides):
    folder = tmp_path_factory.mktemp("spec")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(_with(SPEC, path, value), allow_unicode=True))
    try:
        load_spec(spec, overrides=overrides)
    except ConfigError as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).startswith(str(spec)), str(exc)


_fragments = st.sampled_from(
    [
        "name: demo\n",
        "depths: [1, 2]\n",
        "dataset: {name: sine, window: 3}\n",
        "trials_per_depth: 2\n",
        "space:\n  units: ",
        "2024-13-45",
        "9" * 5000,
        "[" * 40,
        "{",
        "!!binary x",
        "!!python/name:os.system",
        ": :",
        "- a\n",
        "\t",
        "'",
        '"\\x00"',
        "&a [*a]",
        "? a\n",
        "%YAML 1.1\n---\n",
        "...",
    ]
) | st.text(max_size=20)


@FAST
@given(st.lists(_fragments, max_size=8))
def test_any_yaml_text_is_valid_or_one_line(tmp_path_factory, fragments):
    path = tmp_path_factory.mktemp("yaml") / "spec.yaml"
    path.write_text("".join(fragments))
    for model in (SearchSpec, TrainConfig):
        try:
            load_yaml(model, path)
        except ConfigError as exc:
            assert len(str(exc).splitlines()) == 1 and str(exc).startswith(str(path)), str(exc)


_cells = (
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "x", "1", "2.5", "-3", '"', "null", "a b"])
    | st.floats().map(repr)
    | st.integers().map(str)
    | st.text(max_size=5)
)
# Header names, distinct once stripped (repeated ones are tested above).
_headers = st.lists(st.sampled_from(["t", "y", "x", "s"]) | st.text(max_size=4), max_size=4).filter(
    lambda names: len({name.strip() for name in names}) == len(names)
)


@FAST
@given(
    _headers,
    st.lists(st.lists(_cells, max_size=5), max_size=40),
    st.integers(1, 5),
    st.sampled_from(["regression", "classification", "binary"]),
    st.binary(max_size=40),
)
def test_any_csv_file_loads_or_gives_one_line_naming_the_file(header, rows, window, kind, junk):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        if kind == "binary":
            path.write_bytes(junk)
        else:
            # Rows at most as long as the header (longer ones: see the xfail above).
            lines = [",".join(header)] + [",".join(row[: max(len(header), 1)]) for row in rows]
            path.write_text("\n".join(lines) + "\n")
        if kind == "classification":
            spec = DatasetSpec(csv="d.csv", target="y", task="classification", sequence="s")
        else:
            spec = DatasetSpec(csv="d.csv", target="y", window=window)
        try:
            data = load_data(spec, base_dir=Path(folder))
        except ConfigError as exc:
            assert len(str(exc).splitlines()) == 1 and str(path.resolve()) in str(exc), str(exc)
        else:
            assert data.input_size >= 1


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("model.units", [True, 8], "model.units.0: expected a number, got true"),
        ("model.dropout", False, "model.dropout: expected a number, got false"),
        ("train.epochs", True, "train.epochs: expected a number, got true"),
        ("dataset.window", True, "dataset.window: expected a number, got true"),
    ],
)
def test_a_boolean_where_a_number_belongs_is_refused(path, value, expected):
    with pytest.raises(ConfigError, match="^cfg: " + expected.replace(".", r"\.") + "$"):
        parse(TrainConfig, _with(TRAIN, path, value), source="cfg")


def test_booleans_where_booleans_belong_are_still_read():
    cfg = parse(TrainConfig, _with(TRAIN, "model.residual", True), source="cfg")
    assert cfg.model.residual is True


def test_a_key_written_twice_is_refused_naming_both_lines(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "dataset: {name: sine, window: 8}\nmodel: {units: [8]}\ntrain: {lr: 0.01}\nmodel: {}\n"
    )
    with pytest.raises(ConfigError, match="key 'model' appears twice in one mapping \\(lines 2 and 4\\)"):
        load_yaml(TrainConfig, tmp_path / "c.yaml")


def test_merge_keys_may_still_override_what_they_merge(tmp_path):
    text = "base: &b {lr: 0.01, epochs: 3}\ndataset: {name: sine, window: 8}\nmodel: {units: [8]}\n"
    (tmp_path / "c.yaml").write_text(text + "train: {<<: *b, epochs: 5}\n")
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert data["train"] == {"lr": 0.01, "epochs": 5}
    from stacktune.search.spec.loading import read_yaml

    assert read_yaml(tmp_path / "c.yaml")["train"] == {"lr": 0.01, "epochs": 5}
