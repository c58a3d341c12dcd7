"""The evaluation's data origins: rolling origins over a series' test segment, re-splits of independent sequences."""

import numpy as np
import pytest

from stacktune.datasets import DataError, DatasetSpec, load
from stacktune.datasets.origins import MAX_ORIGINS, block_bounds, evaluation_origins


@pytest.fixture(scope="module")
def sunspots():
    return load(DatasetSpec(name="sunspots", window=24, horizon=1, season=11), base_dir=None)


def _rows(split, rows_x):
    """The row of the series each window's first target is, found by matching the window's last input row."""
    found = []
    for window in split.x:
        (row,) = np.flatnonzero((rows_x == window[-1]).all(axis=1) & (np.roll(rows_x, 1, axis=0) == window[-2]).all(1))
        found.append(int(row) + 1)
    return found


def test_one_origin_is_the_prepared_set_itself(sunspots):
    assert evaluation_origins(sunspots, 1) == [sunspots]


def test_rolling_origins_cut_the_test_segment_and_the_first_trains_and_validates_as_the_search(sunspots):
    origins = evaluation_origins(sunspots, 4)
    val_start, test_start = sunspots.meta["segments"]["val"]
    rows = sunspots.meta["length"]
    assert [o.meta["origin"]["number"] for o in origins] == [1, 2, 3, 4]
    blocks = [tuple(o.meta["origin"]["test_rows"]) for o in origins]
    assert blocks == block_bounds(test_start, rows, 4) and blocks[0][0] == test_start and blocks[-1][1] == rows
    assert all(
        a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:], strict=True)
    )  # consecutive, no row twice, none left out
    first = origins[0]
    for split in ("train", "val"):
        assert np.array_equal(getattr(first, split).x, getattr(sunspots, split).x)
        assert np.array_equal(getattr(first, split).y, getattr(sunspots, split).y)
    # Every test window's target lies in its block, so no origin is scored on a row the search trained or
    # validated on; the inputs are the rows just before, some of them before the cutoff.
    x, y = sunspots.rows
    for origin, (start, end) in zip(origins, blocks, strict=True):
        targets = _rows(origin.test, x)
        assert targets == list(range(start, end))
        assert np.allclose(origin.test.y[:, 0], y[start:end, 0])
        seg = origin.meta["segments"]
        assert seg["val"] == [start - (test_start - val_start), start] and seg["train"] == [0, seg["val"][0]]
        assert len(origin.val) == len(sunspots.val)  # validation as long as the search's, ending at the cutoff
    # The windows scored in all: every test row once, against the single split's fewer (its first 24 are inputs).
    assert sum(len(o.test) for o in origins) == rows - test_start
    assert len(sunspots.test) == rows - test_start - 24
    # Later origins train on more of the past, with the search's scaling throughout.
    assert [len(o.train) for o in origins] == sorted(len(o.train) for o in origins)
    assert all(o.meta["x_mean"] == sunspots.meta["x_mean"] for o in origins)


def test_test_blocks_shorter_than_the_horizon_are_refused_in_one_line():
    data = load(DatasetSpec(name="sunspots", window=24, horizon=6), base_dir=None)
    with pytest.raises(DataError) as caught:
        evaluation_origins(data, 12, where="sunspots")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("sunspots: evaluation.origins 12 cuts the")
    assert "shorter than the horizon 6" in message
    with pytest.raises(DataError, match="1 to 12"):
        evaluation_origins(data, MAX_ORIGINS + 1)


def test_resplits_keep_the_test_split_and_draw_stratified_validation_sets_of_the_same_size():
    data = load(DatasetSpec(name="italy_power_demand"), base_dir=None)
    origins = evaluation_origins(data, 3, seed=7)
    assert [o.meta["origin"]["kind"] for o in origins] == ["resplit"] * 3
    assert origins[0] is not data and np.array_equal(origins[0].val.x, data.val.x)
    pool = np.concatenate([data.train.y, data.val.y])
    shares = np.bincount(data.val.y) / len(data.val)
    vals = []
    for origin in origins:
        assert np.array_equal(origin.test.y, data.test.y)  # the test split stays fixed
        assert len(origin.val) == len(data.val) and len(origin.train) == len(data.train)
        assert np.array_equal(np.sort(np.concatenate([origin.train.y, origin.val.y])), np.sort(pool))
        assert np.abs(np.bincount(origin.val.y, minlength=len(shares)) / len(origin.val) - shares).max() < 0.1
        vals.append(origin.val.x)
    assert not np.array_equal(vals[1], vals[2]) and not np.array_equal(vals[0], vals[1])
    # Each re-split is scaled on its own training sequences: their inputs have mean 0 and SD 1 per channel.
    x = origins[2].train.x.reshape(-1, origins[2].train.x.shape[2])
    assert np.allclose(x.mean(axis=0), 0, atol=1e-5) and np.allclose(x.std(axis=0), 1, atol=1e-4)
    # The same seed draws the same re-splits.
    again = evaluation_origins(data, 3, seed=7)
    assert all(np.array_equal(a.val.x, b.val.x) for a, b in zip(origins, again, strict=True))
