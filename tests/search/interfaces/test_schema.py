"""`stacktune schema`: a JSON Schema that editors validate YAML with, accepting what the loader accepts and rejecting
what it refuses, checked with the `jsonschema` package against the loader itself."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import EXAMPLES, run_cli
from jsonschema import Draft202012Validator

from stacktune.search.errors import ConfigError
from stacktune.search.interfaces.schema import json_schema
from stacktune.search.spec.loading import load_spec, load_yaml, read_yaml
from stacktune.search.spec.schema import TrainConfig

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEMO = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
TRAIN = yaml.safe_load((EXAMPLES / "quickstart-train.yaml").read_text())


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    return {kind: Draft202012Validator(json_schema(kind)) for kind in ("spec", "train")}


def _kind(data: dict) -> str:
    """Which file a mapping is, told apart as tests/search/test_examples.py does: a spec names its depths."""
    return "spec" if "depths" in data else "train"


def _schema_errors(validators, kind: str, data: dict) -> list[str]:
    return [error.message for error in validators[kind].iter_errors(data)]


def _loader_error(tmp_path, kind: str, data: dict) -> str | None:
    """The loader's one-line error for `data` written as a YAML file, or None when it loads."""
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_spec(path) if kind == "spec" else load_yaml(TrainConfig, path)
    except ConfigError as exc:
        return str(exc)
    return None


def _changed(base: dict, change: dict) -> dict:
    """A copy of `base` with each dotted `section.key` of `change` set to its value."""
    data = json.loads(json.dumps(base))
    for key, value in change.items():
        *sections, leaf = key.split(".")
        target = data
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = value
    return data


@pytest.mark.parametrize("kind", ["spec", "train"])
def test_schema_is_draft_2020_12_with_title_description_and_closed_objects(kind):
    schema = json_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT and list(schema)[0] == "$schema"
    assert schema["title"] == {"spec": "SearchSpec", "train": "TrainConfig"}[kind]
    assert schema["description"] and schema["additionalProperties"] is False
    for name, definition in schema["$defs"].items():  # every section forbids keys it does not know
        assert definition["additionalProperties"] is False, name
        assert definition["description"], name


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_against_its_schema_and_not_the_other(validators, path):
    data = read_yaml(path)
    kind = _kind(data)
    assert _schema_errors(validators, kind, data) == []
    assert _schema_errors(validators, "train" if kind == "spec" else "spec", data)


@pytest.mark.parametrize(
    "change",
    [
        {"space.units": [8, 16]},
        {"space.units": {"low": 16, "high": 128, "step": 16}},
        {"space.units": {"low": 16, "high": 256, "log": True, "shared": True}},
        {"space.units": {"choices": [16, 32], "shared": True}},
        {"space.units": {"params": 20000}},
        {"space.lr": [1.0e-4, 1.0e-2]},
        {"space.lr": 0.001},
        {"space.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
        {"space.dropout": [0.0, 0.3]},
        {"space.dropout": 0},
        {"space.weight_decay": [1.0e-6, 1.0e-3]},
        {"space.weight_decay": {"low": 0.0, "high": 0.01}},
        {"space.batch_size": [32, 64, 128]},
        {"space.batch_size": 32},
        {"space.batch_size": None},
        {"evaluation": {"seeds": "auto", "max_seeds": 12}},
        {"evaluation.seeds": 0},
        {"baseline": None},
        {"budget": {"kind": "seconds", "per_depth": 600}},
        {"storage": "sqlite:///optuna.db"},
        {"train": {"grad_clip": None, "patience": None, "precision": "bf16"}},
        {"resources": {"cpus_per_trial": 0.5, "gpus_per_trial": 0.25, "max_concurrent": None}},
        {"dataset": {"csv": "prices.csv", "target": ["close", "open"], "window": 30, "transform": "log_diff"}},
    ],
    ids=lambda change: ",".join(change),
)
def test_shorthand_and_optional_forms_pass_the_schema_and_the_loader(validators, tmp_path, change):
    data = _changed(DEMO, change)
    assert _schema_errors(validators, "spec", data) == []
    assert _loader_error(tmp_path, "spec", data) is None  # a CSV is read only when the data is loaded


SPEC_REFUSED = [
    {"trails_per_depth": 6},  # unknown key
    {"space.unit": [8]},  # unknown key in a section
    {"train.epoch": 3},
    {"trials_per_depth": "many"},  # wrong type
    {"depths": "1,2,3"},
    {"space.units": "wide"},
    {"space.lr": "fast"},
    {"evaluation.seeds": "some"},
    {"baseline": 64},
    {"trials_per_depth": 0},  # out of range
    {"depths": [0, 1]},
    {"depths": [1, 33]},
    {"depths": [1, 1]},
    {"space.units": [16, 5000]},
    {"space.units": []},
    {"space.units": {"low": 0, "high": 8}},
    {"space.lr": 0},
    {"space.lr": [0, 0.01]},
    {"space.lr": [0.001, 0.002, 0.003]},
    {"space.dropout": [0.0, 1.5]},
    {"space.dropout": 1},
    {"space.weight_decay": [0, 0.001]},
    {"space.batch_size": [0, 32]},
    {"evaluation.seeds": 5000},
    {"evaluation.confidence": 1.0},
    {"train.epochs": 0},
    {"resources.gpus_per_trial": -1},
    {"name": "has space"},
    {"storage": "optuna.db"},
    {"pruning.kind": "successive-halving"},
]
TRAIN_REFUSED = [
    {"extra": 1},
    {"model.layers": 2},
    {"model.units": "64"},
    {"train.lr": "fast"},
    {"model.units": [64, 0]},
    {"model.units": []},
    {"model.dropout": 1.5},
    {"train.lr": -1},
    {"train.optimizer": "sgd"},
    {"dataset.horizon": 0},
]


@pytest.mark.parametrize(
    "kind, change",
    [("spec", change) for change in SPEC_REFUSED] + [("train", change) for change in TRAIN_REFUSED],
    ids=lambda value: value if isinstance(value, str) else json.dumps(value),
)
def test_wrong_files_are_refused_by_the_schema_and_the_loader(validators, tmp_path, kind, change):
    data = _changed(DEMO if kind == "spec" else TRAIN, change)
    assert _schema_errors(validators, kind, data), f"the schema accepts {change}"
    assert _loader_error(tmp_path, kind, data), f"the loader accepts {change}"


def test_a_missing_required_key_is_refused_by_both(validators, tmp_path):
    for kind, base, key in (("spec", DEMO, "trials_per_depth"), ("train", TRAIN, "model")):
        data = {k: v for k, v in base.items() if k != key}
        assert any(key in message for message in _schema_errors(validators, kind, data))
        assert key in _loader_error(tmp_path, kind, data)


def test_the_command_prints_the_spec_schema_and_writes_the_train_schema(tmp_path):
    printed = run_cli("schema", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == json.loads(json.dumps(json_schema("spec")))
    assert run_cli("schema", "spec", cwd=tmp_path).stdout == printed.stdout

    written = run_cli("schema", "train", "--out", "train.schema.json", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "train.schema.json"
    schema = json.loads((tmp_path / "train.schema.json").read_text())
    assert schema["$schema"] == DRAFT and schema["title"] == "TrainConfig"
    config = read_yaml(EXAMPLES / "quickstart-train.yaml")
    assert list(Draft202012Validator(schema).iter_errors(config)) == []


@pytest.mark.parametrize(
    "args, needle",
    [
        (("schema", "search"), "unknown schema 'search': expected one of spec, train"),
        (("schema", "--out", "missing/spec.json"), "missing/spec.json"),
        (("schema", "train", "--out", "."), "--out ."),
    ],
)
def test_bad_arguments_give_one_error_line_and_exit_2(tmp_path, args, needle):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: ") and needle in proc.stderr
    assert not (tmp_path / "missing").exists()
