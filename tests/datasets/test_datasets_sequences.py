"""Classification preparation: padding, variable lengths, stratified seeded splits, CSV sequences."""

import numpy as np
import pytest

from stacktune.datasets import DataError, load


def test_japanese_vowels_keeps_variable_lengths():
    prepared = load({"name": "japanese_vowels"})
    lengths = np.concatenate([s.lengths for s in (prepared.train, prepared.val, prepared.test)])
    assert lengths.dtype == np.int64 and (lengths.min(), lengths.max()) == (7, 29)
    assert prepared.meta["max_length"] == 29
    for split in (prepared.train, prepared.val, prepared.test):
        assert split.x.shape[1] == 29
        steps = np.arange(29)[None, :]
        padding = steps >= split.lengths[:, None]
        assert (split.x[padding] == 0).all()
        assert (np.abs(split.x[~padding]).sum(axis=-1) > 0).all()


def test_scaling_fits_real_training_steps_only():
    prepared = load({"name": "japanese_vowels"})
    train = prepared.train
    real = train.x[np.arange(train.x.shape[1])[None, :] < train.lengths[:, None]]
    np.testing.assert_allclose(real.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(real.std(axis=0), 1, atol=1e-4)


def test_equal_length_sets_have_no_lengths():
    prepared = load({"name": "italy_power_demand", "scale": False})
    assert prepared.train.lengths is None and prepared.train.x.shape[1:] == (24, 1)
    assert prepared.meta["x_mean"] is None and prepared.meta["labels"] == ["1", "2"]


def test_validation_is_a_stratified_part_of_train():
    prepared = load({"name": "basic_motions", "val_fraction": 0.2})
    assert prepared.meta["sizes"] == {"train": 32, "val": 8, "test": 40}
    assert np.bincount(prepared.val.y).tolist() == [2, 2, 2, 2]


def write_sequences(path, rows):
    path.write_text("id,label,a,b\n" + "".join(f"{i},{label},{a},{b}\n" for i, label, a, b in rows))
    return path


def test_csv_classification_groups_rows_by_sequence(tmp_path):
    rows = []
    for s in range(20):
        label = "cat" if s % 2 else "dog"
        rows += [(f"s{s}", label, s, step) for step in range(3 + s % 4)]
    csv = write_sequences(tmp_path / "seq.csv", rows)
    spec = {"csv": str(csv), "task": "classification", "target": "label", "sequence": "id", "scale": False}
    prepared = load(spec)
    assert prepared.meta["labels"] == ["cat", "dog"] and prepared.meta["columns"] == ["a", "b"]
    assert prepared.meta["sizes"] == {"train": 14, "val": 3, "test": 3}
    assert prepared.output_size == 2 and prepared.input_size == 2
    for split in (prepared.train, prepared.val, prepared.test):
        for x, length, y in zip(split.x, split.lengths, split.y, strict=True):
            s = int(x[0, 0])
            assert length == 3 + s % 4 and y == (0 if s % 2 else 1)
            assert x[:length, 1].tolist() == list(range(length))


def test_csv_label_must_not_change_within_a_sequence(tmp_path):
    csv = write_sequences(tmp_path / "bad.csv", [("s1", "x", 1, 1), ("s2", "y", 1, 1), ("s1", "y", 2, 2)])
    spec = {"csv": str(csv), "task": "classification", "target": "label", "sequence": "id"}
    with pytest.raises(DataError, match=r"bad\.csv: column 'label' changes within sequence 's1' at line 4"):
        load(spec)


def test_too_few_sequences_for_the_splits(tmp_path):
    csv = write_sequences(tmp_path / "few.csv", [("s1", "x", 1, 1), ("s2", "y", 1, 1)])
    spec = {"csv": str(csv), "task": "classification", "target": "label", "sequence": "id"}
    with pytest.raises(DataError, match=r"few\.csv: 2 sequences leave the val split empty"):
        load(spec)


def test_sequences_that_would_not_fit_in_memory_once_padded_are_refused():
    from stacktune.datasets.samples import Sequences, prepare_sequences

    long = np.broadcast_to(np.zeros((1, 1)), (300_000_000, 1))  # a view: no memory behind it
    data = Sequences(x=[long, np.zeros((2, 1))], y=np.zeros(2), columns=["x"], targets=["y"])
    with pytest.raises(DataError, match=r"2 sequences padded to 300000000 steps of 1 channels make 600000000 values"):
        prepare_sequences(
            data, name="n", source="s", where="w", val_fraction=0.2, test_fraction=0.2, seed=0, scale=True
        )
