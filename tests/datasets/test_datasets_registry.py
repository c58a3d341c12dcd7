"""Every built-in set loads offline with the shapes and metadata the registry promises."""

import json
import subprocess
import sys

import numpy as np
import pytest

from stacktune.datasets import DataError, get_info, list_datasets, load

FORECASTING = ["sine", "linear", "fibonacci", "mackey_glass", "sunspots", "co2", "macrodata"]
CLASSIFICATION = {"japanese_vowels": 370, "italy_power_demand": 1029, "basic_motions": 40}  # TEST file sizes


def test_registry_names():
    names = [info.name for info in list_datasets()]
    assert sorted(names) == sorted(FORECASTING + list(CLASSIFICATION) + ["adding"])


@pytest.mark.parametrize("name", FORECASTING)
def test_forecasting_sets_match_registry(name):
    info = get_info(name)
    prepared = load({"name": name, "window": 4, "horizon": 2})
    assert (prepared.task, prepared.input_size, prepared.output_size) == ("regression", info.channels, 2)
    assert prepared.meta["length"] == info.length and info.classes is None
    for split in (prepared.train, prepared.val, prepared.test):
        assert split.x.dtype == split.y.dtype == np.float32 and split.lengths is None
        assert split.x.shape[1:] == (4, info.channels) and split.y.shape == (len(split), 2)
        assert np.isfinite(split.x).all() and np.isfinite(split.y).all()


@pytest.mark.parametrize("name, test_size", CLASSIFICATION.items())
def test_classification_sets_match_registry(name, test_size):
    info = get_info(name)
    prepared = load({"name": name})
    assert (prepared.task, prepared.input_size, prepared.output_size) == ("classification", info.channels, info.classes)
    assert prepared.meta["length"] == info.length == sum(prepared.meta["sizes"].values())
    assert len(prepared.test) == test_size and len(prepared.meta["labels"]) == info.classes
    for split in (prepared.train, prepared.val, prepared.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert split.x.shape[2] == info.channels and split.y.min() >= 0 and split.y.max() < info.classes
    assert set(prepared.train.y) == set(range(info.classes))


def test_adding_problem_samples():
    prepared = load({"name": "adding", "length": 300, "seq_len": 20, "scale": False})
    assert get_info("adding").length == load({"name": "adding"}).meta["length"] == 2000
    assert prepared.meta["sizes"] == {"train": 210, "val": 45, "test": 45}
    x, y = prepared.train.x, prepared.train.y
    assert x.shape == (210, 20, 2) and y.shape == (210, 1) and prepared.output_size == 1
    assert ((x[:, :, 0] >= 0) & (x[:, :, 0] <= 1)).all()
    assert (x[:, :, 1].sum(axis=1) == 2).all()
    assert (x[:, :10, 1].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "sine", "window": 5},
        {"name": "fibonacci", "window": 5},
        {"name": "mackey_glass", "window": 5, "length": 300},
        {"name": "adding", "length": 100},
        {"name": "basic_motions"},
    ],
)
def test_seeded_sets_repeat_and_vary_with_seed(spec):
    first, again, other = (load({**spec, "seed": seed}) for seed in (1, 1, 2))
    assert np.array_equal(first.train.x, again.train.x) and np.array_equal(first.val.y, again.val.y)
    assert not np.array_equal(first.train.x, other.train.x)


def test_fibonacci_feature_determines_target():
    prepared = load({"name": "fibonacci", "window": 2, "scale": False})
    k, x_next = prepared.train.x[:, :, 0], prepared.train.y[:, 0]
    residual = x_next - np.cos(2 * np.pi * (k[:, 0] + k[:, 1]))
    assert abs(residual.std() - 0.05) < 0.01  # only the noise is left once K is known


def test_linear_is_one_to_n():
    prepared = load({"name": "linear", "window": 2, "scale": False})
    assert prepared.train.x[0, :, 0].tolist() == [1, 2] and prepared.test.y[-1, 0] == 100


def test_unknown_name_and_missing_window():
    with pytest.raises(DataError, match="unknown dataset 'nope'; known datasets: sine, linear"):
        get_info("nope")
    with pytest.raises(DataError, match="dataset 'sunspots': forecasting needs `window`"):
        load({"name": "sunspots"})


def test_meta_is_json_serialisable():
    for spec in ({"name": "macrodata", "window": 4}, {"name": "japanese_vowels"}, {"name": "adding"}):
        json.dumps(load(spec).meta)


def test_import_and_listing_stay_light():
    code = (
        "import sys, stacktune.datasets as d; d.list_datasets(); d.DatasetSpec(name='co2', window=3); "
        "print([m for m in ('pandas', 'statsmodels', 'sktime', 'torch', 'ray', 'optuna', 'mlflow') "
        "if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_ts_parser_reads_variable_length_multichannel_cases(tmp_path):
    from stacktune.datasets.ucr import parse_ts

    path = tmp_path / "Toy_TRAIN.ts"
    path.write_text(
        "# a comment\n@problemName Toy\n@timeStamps false\n@missing false\n@classLabel true b a\n@data\n"
        "1,2,3:4,5,6:a\n\n7:8.5:b\n"
    )
    cases, labels, declared = parse_ts(path)
    assert [case.tolist() for case in cases] == [[[1, 4], [2, 5], [3, 6]], [[7, 8.5]]]
    assert labels == ("a", "b") and declared == ("b", "a") and not cases[0].flags.writeable
    bad = tmp_path / "Bad_TRAIN.ts"
    bad.write_text("@missing true\n@data\n1:a\n")
    with pytest.raises(DataError, match="line 1: `@missing true` is not supported"):
        parse_ts(bad)
