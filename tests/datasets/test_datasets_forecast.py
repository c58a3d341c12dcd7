"""Forecast preparation: exact windows, no leakage across splits, train-only scaling."""

import numpy as np
import pytest

from stacktune.datasets import load


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def test_windows_of_one_to_forty_are_exact():
    prepared = load({"name": "linear", "length": 40, "window": 3, "horizon": 2, "scale": False})
    assert prepared.meta["segments"] == {"train": [0, 28], "val": [28, 34], "test": [34, 40]}
    assert prepared.meta["sizes"] == {"train": 24, "val": 2, "test": 2}
    train, val, test = prepared.train, prepared.val, prepared.test
    assert train.x[0, :, 0].tolist() == [1, 2, 3] and train.y[0].tolist() == [4, 5]
    assert train.x[-1, :, 0].tolist() == [24, 25, 26] and train.y[-1].tolist() == [27, 28]
    assert val.x[0, :, 0].tolist() == [29, 30, 31] and val.y[-1].tolist() == [33, 34]
    assert test.x[0, :, 0].tolist() == [35, 36, 37] and test.y[-1].tolist() == [39, 40]


def test_multi_target_layout_is_step_major(tmp_path):
    t = np.arange(60)
    csv = write_csv(tmp_path / "two.csv", a=t, b=1000 + t, other=-t)
    prepared = load({"csv": str(csv), "target": ["a", "b"], "window": 2, "horizon": 2, "scale": False})
    assert prepared.meta["columns"] == ["a", "b", "other"] and prepared.meta["targets"] == ["a", "b"]
    assert prepared.input_size == 3 and prepared.output_size == 4
    assert prepared.train.x[0].tolist() == [[0, 1000, 0], [1, 1001, -1]]
    assert prepared.train.y[0].tolist() == [2, 1002, 3, 1003]


def test_features_may_exclude_the_target(tmp_path):
    t = np.arange(60)
    csv = write_csv(tmp_path / "exo.csv", x=t, y=2 * t)
    prepared = load({"csv": str(csv), "target": "y", "features": ["x"], "window": 2, "scale": False})
    assert prepared.input_size == 1 and prepared.train.y[0].tolist() == [4]


def test_no_window_straddles_or_leaks_across_splits(tmp_path):
    csv = write_csv(tmp_path / "time.csv", t=np.arange(200))
    prepared = load({"csv": str(csv), "target": "t", "window": 5, "horizon": 3, "scale": False})
    segments = prepared.meta["segments"]
    previous_end = 0
    for name in ("train", "val", "test"):
        split, (start, end) = getattr(prepared, name), segments[name]
        assert start == previous_end
        times = np.concatenate([split.x[:, :, 0], split.y], axis=1)  # each row: window then horizon
        assert (times >= start).all() and (times < end).all()
        assert (np.diff(times, axis=1) == 1).all()
        assert times.min() == start and times.max() == end - 1  # segments are fully used
        previous_end = end
    assert previous_end == 200


def test_scaling_uses_the_training_segment_only(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(5, 2, size=(100, 2))
    spec = {"target": "b", "window": 4}
    first = load({**spec, "csv": str(write_csv(tmp_path / "a.csv", a=values[:, 0], b=values[:, 1]))})
    train_end = first.meta["segments"]["train"][1]
    np.testing.assert_allclose(first.meta["x_mean"], values[:train_end].mean(axis=0))
    np.testing.assert_allclose(first.meta["x_std"], values[:train_end].std(axis=0))
    assert first.meta["y_mean"] == [first.meta["x_mean"][1]]

    changed = values.copy()
    changed[train_end:] *= 1000  # val and test only
    second = load({**spec, "csv": str(write_csv(tmp_path / "b.csv", a=changed[:, 0], b=changed[:, 1]))})
    for key in ("x_mean", "x_std", "y_mean", "y_std"):
        assert second.meta[key] == first.meta[key]
    np.testing.assert_array_equal(second.train.x, first.train.x)
    # Test windows are scaled with the training statistics, so they undo exactly.
    start = second.meta["segments"]["test"][0]
    restored = second.test.x[0] * np.array(second.meta["x_std"]) + np.array(second.meta["x_mean"])
    np.testing.assert_allclose(restored, changed[start : start + 4], rtol=1e-5)


def test_y_statistics_repeat_per_horizon_step():
    prepared = load({"name": "macrodata", "window": 4, "horizon": 3})
    assert len(prepared.meta["y_mean"]) == 3 and len(set(prepared.meta["y_mean"])) == 1
    assert prepared.meta["targets"] == ["realgdp"] and prepared.meta["y_layout"] == "step-major"


@pytest.mark.parametrize("name", ["sine", "co2"])
def test_scaled_training_inputs_are_standardised(name):
    prepared = load({"name": name, "window": 1})
    train = prepared.train.x[:, 0, 0]
    assert abs(train.mean()) < 0.05 and abs(train.std() - 1) < 0.05
