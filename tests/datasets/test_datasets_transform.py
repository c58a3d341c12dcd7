"""Forecasting extras: diff/log_diff transforms before the split, their anchors, `season`, target indices."""

import numpy as np
import pytest
from pydantic import ValidationError

from stacktune.datasets import DataError, DatasetSpec, get_info, load
from stacktune.datasets.forecast import Series, transform_series

FORECASTING = ["sine", "linear", "fibonacci", "mackey_glass", "sunspots", "co2", "macrodata"]


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def one_column(values) -> Series:
    return Series(np.asarray(values, dtype=np.float64)[:, None], ["v"], ["v"], ["v"])


def test_diff_is_the_change_from_each_row_to_the_next():
    series = Series(np.array([[1.0, 10.0], [3.0, 7.0], [6.0, 7.0], [10.0, 0.0]]), ["a", "b"], ["a", "b"], ["b"])
    diffed = transform_series(series, "diff", where="here")
    assert diffed.values.tolist() == [[2.0, -3.0], [3.0, 0.0], [4.0, -7.0]]
    assert (diffed.columns, diffed.features, diffed.targets) == (["a", "b"], ["a", "b"], ["b"])
    assert transform_series(series, "none", where="here") is series


def test_log_diff_is_the_change_of_the_natural_log():
    logged = transform_series(one_column([1.0, np.e, np.e**3, 2 * np.e**3]), "log_diff", where="here")
    np.testing.assert_allclose(logged.values[:, 0], [1.0, 2.0, np.log(2)])


def test_a_transformed_csv_loads_as_its_changes(tmp_path):
    squares = np.arange(1, 21) ** 2
    csv = write_csv(tmp_path / "squares.csv", v=squares, w=2.0 ** np.arange(20))
    prepared = load({"csv": str(csv), "target": "v", "window": 2, "transform": "diff", "scale": False})
    # the squares' changes are the odd numbers 3, 5, 7, ...: 19 rows where the file has 20
    assert prepared.meta["length"] == 19 and prepared.meta["transform"] == "diff"
    assert prepared.train.x[0].tolist() == [[3, 1], [5, 2]] and prepared.train.y[0].tolist() == [7]
    logged = load({"csv": str(csv), "target": "w", "window": 2, "transform": "log_diff", "scale": False})
    np.testing.assert_allclose(logged.train.x[:, :, 1], np.log(2), rtol=1e-6)  # w doubles every row


@pytest.mark.parametrize("transform", ["diff", "log_diff"])
def test_the_anchors_undo_the_transform_of_every_segment(tmp_path, transform):
    rng = np.random.default_rng(0)
    values = np.exp(np.cumsum(rng.normal(0.01, 0.1, size=(120, 2)), axis=0))  # positive random walks
    csv = write_csv(tmp_path / "walk.csv", a=values[:, 0], b=values[:, 1])
    prepared = load({"csv": str(csv), "target": ["b", "a"], "window": 3, "transform": transform, "scale": False})
    forward, back = (np.log, np.exp) if transform == "log_diff" else (lambda v: v, lambda v: v)
    changes = np.diff(forward(values), axis=0)[:, [1, 0]]  # as the targets are ordered
    for split, (start, end) in prepared.meta["segments"].items():
        anchor = np.array(prepared.meta["transform_anchor"][split])
        np.testing.assert_allclose(anchor, values[start, [1, 0]])
        restored = back(forward(anchor) + np.cumsum(changes[start:end], axis=0))
        np.testing.assert_allclose(restored, values[start + 1 : end + 1, [1, 0]], rtol=1e-9)
        # and the windows' first target steps are those same changes
        split_data = getattr(prepared, split)
        np.testing.assert_allclose(split_data.y[:, :2], changes[start + 3 : end], rtol=1e-5, atol=1e-7)


def test_without_a_transform_there_is_no_anchor():
    prepared = load({"name": "linear", "length": 40, "window": 3})
    assert prepared.meta["transform"] == "none" and prepared.meta["transform_anchor"] is None
    assert prepared.meta["length"] == 40


@pytest.mark.parametrize("bad, shown", [("0", "0"), ("-2.5", "-2.5")])
def test_log_diff_of_a_value_not_above_zero_names_file_column_and_line(tmp_path, bad, shown):
    csv = tmp_path / "prices.csv"
    rows = [f"{i + 1},{10 + i}" for i in range(30)]
    rows[7] = f"8,{bad}"
    # a blank line before the bad row: the reported line is the file's, not the row's position
    csv.write_text("t,price\n" + "\n".join(rows[:3]) + "\n\n" + "\n".join(rows[3:]) + "\n")
    with pytest.raises(DataError) as error:
        load({"csv": str(csv), "target": "price", "features": ["price"], "window": 2, "transform": "log_diff"})
    message = str(error.value)
    assert message == f"{csv}: transform log_diff needs values > 0, but column 'price' has {shown} at line 10"
    assert "\n" not in message


def test_log_diff_checks_every_input_column_not_only_the_target(tmp_path):
    csv = write_csv(tmp_path / "x.csv", y=np.arange(1, 31), x=np.arange(30))
    with pytest.raises(DataError, match=r"column 'x' has 0 at line 2$"):
        load({"csv": str(csv), "target": "y", "window": 2, "transform": "log_diff"})


def test_log_diff_of_a_built_in_set_names_the_dataset_and_row():
    with pytest.raises(DataError) as error:
        load({"name": "sunspots", "window": 4, "transform": "log_diff"})
    assert str(error.value) == (
        "dataset 'sunspots': transform log_diff needs values > 0, but column 'SUNACTIVITY' has 0 at row 12"
    )


def test_a_series_too_short_after_differencing_says_how_many_rows_the_file_needs(tmp_path):
    def series_of(rows: int) -> dict:
        csv = write_csv(tmp_path / f"{rows}.csv", v=np.arange(1, rows + 1))
        return {"csv": str(csv), "target": "v", "window": 2, "transform": "diff", "val_fraction": 0.1}

    with pytest.raises(DataError) as error:
        load(series_of(26))
    assert "series has 25 rows after the diff transform but window 2 + horizon 1 need 3" in str(error.value)
    assert "so at least 27 rows before it with val_fraction 0.1" in str(error.value)
    assert load(series_of(27)).meta["length"] == 26


def walk_with_drift(tmp_path):
    rng = np.random.default_rng(0)
    return write_csv(tmp_path / "walk.csv", v=np.cumsum(0.5 + rng.normal(0, 1, size=2000)))


def test_differencing_a_random_walk_makes_training_and_test_targets_alike(tmp_path):
    prepared = load({"csv": str(walk_with_drift(tmp_path)), "target": "v", "window": 8, "transform": "diff"})
    train, test = prepared.train.y[:, 0], prepared.test.y[:, 0]
    # scaled with the training segment's statistics, so one training std is 1
    assert abs(train.mean()) < 0.05 and abs(test.mean()) < 0.25
    assert abs(test.std() - 1) < 0.25


def test_without_differencing_a_trend_leaves_the_training_range(tmp_path):
    prepared = load({"csv": str(walk_with_drift(tmp_path)), "target": "v", "window": 8})
    train, test = prepared.train.y[:, 0], prepared.test.y[:, 0]
    assert test.mean() > train.max()
    linear = load({"name": "linear", "window": 2, "transform": "diff", "scale": False})
    assert {float(v) for split in (linear.train, linear.val, linear.test) for v in split.y.ravel()} == {1.0}
    assert load({"name": "linear", "window": 2}).test.y.min() > load({"name": "linear", "window": 2}).train.y.max()


@pytest.mark.parametrize("name", FORECASTING)
def test_every_built_in_series_can_be_differenced(name):
    spec = {"name": name, "window": 4, "horizon": 2, "transform": "diff"}
    prepared = load(spec)
    assert prepared.meta["length"] == get_info(name).length - 1
    assert len(prepared.meta["transform_anchor"]["test"]) == len(prepared.meta["targets"])
    for split in (prepared.train, prepared.val, prepared.test):
        assert np.isfinite(split.x).all() and np.isfinite(split.y).all()


@pytest.mark.parametrize(
    "fields, kind",
    [
        ({"name": "japanese_vowels"}, "built-in 'japanese_vowels'"),
        ({"name": "adding"}, "built-in 'adding'"),
        ({"csv": "x.csv", "target": "label", "task": "classification", "sequence": "id"}, "`task: classification`"),
    ],
)
@pytest.mark.parametrize("extra", [{"transform": "diff"}, {"transform": "log_diff"}, {"season": 12}])
def test_transform_and_season_are_rejected_for_sets_of_independent_sequences(fields, kind, extra):
    field = next(iter(extra))
    with pytest.raises(ValidationError, match=f"`{field}` applies only to forecasting sets, not to {kind}"):
        DatasetSpec(**fields, **extra)
    assert DatasetSpec(**fields, transform="none").transform == "none"


@pytest.mark.parametrize("fields", [{"transform": "log"}, {"season": 1}, {"season": 0}])
def test_bad_transform_or_season_values(fields):
    with pytest.raises(ValidationError, match=next(iter(fields))):
        DatasetSpec(name="sine", window=3, **fields)


def test_season_is_recorded_for_forecasting_sets(tmp_path):
    assert load({"name": "sunspots", "window": 4, "season": 11}).meta["season"] == 11
    assert load({"name": "sine", "window": 4}).meta["season"] is None
    csv = write_csv(tmp_path / "m.csv", v=np.arange(60))
    assert load({"csv": str(csv), "target": "v", "window": 3, "season": 12, "transform": "diff"}).meta["season"] == 12


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"name": "sine"}, [0]),
        ({"name": "fibonacci"}, [1]),  # inputs [K, X], target X
        ({"name": "macrodata"}, [0]),
    ],
)
def test_target_in_inputs_of_built_in_series(spec, expected):
    meta = load({**spec, "window": 3}).meta
    assert meta["target_in_inputs"] == expected
    assert [meta["columns"][i] for i in expected] == meta["targets"]


def test_target_in_inputs_of_csv_series(tmp_path):
    t = np.arange(60)
    csv = str(write_csv(tmp_path / "three.csv", a=t, b=1000 + t, other=-t))
    both = load({"csv": csv, "target": ["a", "b"], "window": 2}).meta
    assert both["columns"] == ["a", "b", "other"] and both["target_in_inputs"] == [0, 1]
    some = load({"csv": csv, "target": ["a", "b"], "features": ["other", "b"], "window": 2}).meta
    assert some["columns"] == ["other", "b"] and some["target_in_inputs"] == [None, 1]
    assert load({"csv": csv, "target": "a", "features": ["other"], "window": 2}).meta["target_in_inputs"] == [None]


def test_target_in_inputs_gives_a_persistence_forecast():
    prepared = load({"name": "linear", "window": 3, "horizon": 2, "scale": False})
    (index,) = prepared.meta["target_in_inputs"]
    last = prepared.test.x[:, -1, index]
    # the series 1..N: the next two values are the last input plus 1 and plus 2
    np.testing.assert_array_equal(prepared.test.y - last[:, None], np.tile([1.0, 2.0], (len(last), 1)))
