"""Validation of the `dataset:` config section."""

import pytest
from pydantic import ValidationError

from stacktune.datasets import DatasetSpec, list_datasets


def test_name_or_csv_is_enough():
    assert DatasetSpec(name="sine", window=8).forecasting
    spec = DatasetSpec(csv="data.csv", target=["a", "b"], window=3)
    assert spec.targets == ["a", "b"] and spec.forecasting


@pytest.mark.parametrize("fields", [{"name": "sine", "csv": "x.csv", "target": "y"}, {}])
def test_exactly_one_of_name_and_csv(fields):
    with pytest.raises(ValidationError, match=r"exactly one of `name`.*`csv`"):
        DatasetSpec(**fields)


def test_unknown_name_is_a_value_error_listing_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'sunspot'") as error:
        DatasetSpec(name="sunspot")
    for info in list_datasets():
        assert info.name in str(error.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"horizon": 0},
        {"window": 0},
        {"val_fraction": 0.5},
        {"test_fraction": 0.0},
        {"seq_len": 1},
    ],
)
def test_out_of_range_numbers(fields):
    with pytest.raises(ValidationError):
        DatasetSpec(name="adding", **fields)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValidationError, match="windows"):
        DatasetSpec(name="sine", windows=3)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"csv": "x.csv"}, "target"),
        ({"csv": "x.csv", "target": "y", "task": "classification"}, "sequence"),
        ({"csv": "x.csv", "target": ["y", "z"], "task": "classification", "sequence": "id"}, "target"),
        ({"csv": "x.csv", "target": "y", "sequence": "id"}, "sequence"),
        ({"csv": "x.csv", "target": "y", "length": 10}, "length"),
        ({"name": "sunspots", "target": "y"}, "target"),
        ({"name": "sunspots", "length": 10}, "length"),
        ({"name": "sine", "seq_len": 10}, "seq_len"),
    ],
)
def test_fields_that_do_not_apply_are_named(fields, field):
    with pytest.raises(ValidationError, match=f"`{field}`"):
        DatasetSpec(**fields)


def test_relative_csv_resolves_against_base_dir(tmp_path):
    assert DatasetSpec(csv="d/x.csv", target="y").csv_path(tmp_path) == tmp_path / "d" / "x.csv"


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"name": "sine", "window": 10_001}, "less than or equal to 10000"),
        ({"name": "sine", "window": 4, "horizon": 10**9}, "less than or equal to 10000"),
        ({"name": "sine", "window": 4, "length": 10**9}, "less than or equal to 1000000"),
        ({"name": "adding", "seq_len": 10_001}, "less than or equal to 10000"),
        ({"name": "adding", "length": 10_000, "seq_len": 10_000}, "may be at most 10000000 steps in all"),
        ({"name": "adding", "length": 1_000_000}, "may be at most 10000000 steps in all, got 1000000 x 50"),
        ({"csv": "x" * 4097, "target": "y"}, "at most 4096 characters"),
        ({"csv": "x.csv", "target": "y", "features": ["a"] * 10_001}, "at most 10000 items"),
        ({"csv": "x.csv", "target": ["a"] * 10_001}, "`target` may name at most 10000 columns"),
    ],
)
def test_sizes_have_upper_bounds(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        DatasetSpec(**fields)


def test_sizes_at_their_bounds_are_accepted():
    assert DatasetSpec(name="sine", window=10_000, horizon=10_000, length=1_000_000).window == 10_000
    assert DatasetSpec(name="adding", length=1000, seq_len=10_000).seq_len == 10_000
