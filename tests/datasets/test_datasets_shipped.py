"""The real built-in sets come from the data files shipped in the package: unchanged, complete, with their notices.

The expected values were recorded from the loaders while they still read statsmodels' and sktime's own copies
of these files, so a loader that parses them differently fails here.
"""

import hashlib

import numpy as np
import pytest

from stacktune.datasets import load, packaged, ucr
from stacktune.datasets.datafiles import DATA_DIR

NOT_DATA = {"LICENSES.md", "SHA256SUMS", "NOTICE"}

# name: (shape, first row, SHA-256 of the values as little-endian float64 in C order)
SERIES = {
    "sunspots": ((309, 1), [5.0], "66c86ecdcd5950f61f6243f924fdfa10a44596e94816291062fdda266a31c86d"),
    "co2": ((2284, 1), [316.1], "866a09cd8e1611423abe60da5a4a70c1bd0d16628548798bbde9b7c98e4c30d0"),
    "macrodata": (
        (203, 7),
        [2710.349, 1707.4, 286.898, 470.045, 1886.9, 28.98, 5.8],
        "811b23430332d6c756b055699f0ea366d50e2308456aff3b3abda3464569d867",
    ),
}

# name: (cases, training cases, class names, first case's shape, SHA-256 of every case's values stacked in order,
# of the cases' lengths, and of the label ids)
SEQUENCES = {
    "japanese_vowels": (
        640,
        270,
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
        (20, 12),
        "ca43c43ffb87230ce889ee8b3418f39aff1aef95fdbfdb00460ac0864ab17b43",
        "e98a7b3fe5046a19dcb6ea5b5129d549d5425b05abf9b02516ca37e7fd1f3514",
        "ae9808b328ec8f608257a5d5b8ea31b577e2454d5b39117b5cfa2e8ddf126700",
    ),
    "italy_power_demand": (
        1096,
        67,
        ["1", "2"],
        (24, 1),
        "8346e0b7241bcab41a1e514e5edd5625218112ab44b620f2fe5883d7182f5a81",
        "7b0c3fff3635305c7b9cd24e623860472d222a0a63c888b5538be67a25be024c",
        "32317d9fec87befa2b3781617286cbeb05845a9f191ae7764c8fbf5f1546b546",
    ),
    "basic_motions": (
        80,
        40,
        ["Standing", "Running", "Walking", "Badminton"],
        (100, 6),
        "7fabb758594976e3c0dffd14ec86a863164df1d3b2e364c1d453c04c96524126",
        "0ca4f544966cfb0a6d0068deefc0d6523ee9deca089f77ed6fb7678ba5e1a5c0",
        "52d4dc38da322ee5aa6ca358641906c1ad411588388ed7b07a00b1b3652c17ee",
    ),
}

# spec: (train, val, test) shapes of x
PREPARED = {
    ("sunspots", 2): ((212, 4, 1), (41, 4, 1), (41, 4, 1)),
    ("co2", 1): ((1594, 4, 1), (339, 4, 1), (339, 4, 1)),
    ("macrodata", 1): ((139, 4, 7), (26, 4, 7), (26, 4, 7)),
    ("japanese_vowels", None): ((230, 29, 12), (40, 29, 12), (370, 29, 12)),
    ("italy_power_demand", None): ((57, 24, 1), (10, 24, 1), (1029, 24, 1)),
    ("basic_motions", None): ((34, 100, 6), (6, 100, 6), (40, 100, 6)),
}


def _sha256(values: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=dtype).tobytes()).hexdigest()


def _manifest() -> dict[str, str]:
    """SHA256SUMS, in `sha256sum` format: path -> hex digest."""
    rows = [line.split(maxsplit=1) for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines() if line]
    return {path: digest for digest, path in rows}


def test_every_shipped_data_file_matches_the_manifest():
    manifest = _manifest()
    shipped = {p.relative_to(DATA_DIR).as_posix() for p in DATA_DIR.rglob("*") if p.is_file()}
    assert {p for p in shipped if p.rsplit("/", 1)[-1] not in NOT_DATA} == set(manifest)
    for path, digest in sorted(manifest.items()):
        assert hashlib.sha256((DATA_DIR / path).read_bytes()).hexdigest() == digest, path


def test_every_data_folder_has_a_notice_and_a_licence_entry():
    licences = (DATA_DIR / "LICENSES.md").read_text()
    folders = sorted(p for p in DATA_DIR.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert len(folders) == len(SERIES) + len(SEQUENCES)
    for folder in folders:
        notice = (folder / "NOTICE").read_text()
        assert "Copied unchanged from" in notice and "BSD-3-Clause" in notice, folder.name
        assert f"`{folder.name}/`" in licences, folder.name
    assert "## statsmodels (BSD-3-Clause)" in licences and "## sktime (BSD-3-Clause)" in licences


@pytest.mark.parametrize("name", SERIES)
def test_series_values_are_the_recorded_ones(name):
    shape, first, digest = SERIES[name]
    series = getattr(packaged, name)(None)
    assert series.values.shape == shape and series.values.dtype == np.float64
    assert series.values[0].tolist() == first and not series.values.flags.writeable
    assert _sha256(series.values, "<f8") == digest


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_values_are_the_recorded_ones(name):
    cases, train_cases, labels, first_shape, x_digest, lengths_digest, y_digest = SEQUENCES[name]
    sequences = getattr(ucr, name)(None)
    assert (len(sequences.x), sequences.test_from, sequences.labels) == (cases, train_cases, labels)
    assert sequences.x[0].shape == first_shape
    assert _sha256(np.concatenate(sequences.x), "<f8") == x_digest
    assert _sha256([len(case) for case in sequences.x], "<i8") == lengths_digest
    assert _sha256(sequences.y, "<i8") == y_digest


@pytest.mark.parametrize("name, horizon", PREPARED, ids=[name for name, _ in PREPARED])
def test_prepared_shapes_are_the_recorded_ones(name, horizon):
    spec = {"name": name} if horizon is None else {"name": name, "window": 4, "horizon": horizon}
    prepared = load(spec)
    shapes = tuple(split.x.shape for split in (prepared.train, prepared.val, prepared.test))
    assert shapes == PREPARED[name, horizon]
