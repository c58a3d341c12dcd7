"""Wrong specs and data through the real command: exit 2, one `error:` line that names the field or file,
the value and what would be valid, and nothing written; an unreachable tracking server: exit 3 within seconds."""

from __future__ import annotations

import socket
import time

import pytest
import yaml
from conftest import yaml_bomb

SPEC = {
    "name": "bad-input",
    "dataset": {"name": "sine", "window": 4},
    "depths": [1, 2],
    "trials_per_depth": 2,
    "space": {"units": [4, 8]},
    "train": {"epochs": 1},
}
CSV_SPEC = {**SPEC, "dataset": {"csv": "d.csv", "target": "y", "window": 4}}


def _with(path: str, value, base: dict = SPEC) -> dict:
    section, _, leaf = path.rpartition(".")
    if not section:
        return {**base, leaf: value}
    return {**base, section: {**base.get(section, {}), leaf: value}}


def _search(cli, tmp_path, spec: dict, *flags: str):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return cli(
        "search",
        str(path),
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        *flags,
        timeout=120,
    )


def _rejected(proc, tmp_path, *needles: str) -> None:
    """Exit 2, no traceback, the last stderr line is the only `error:` line and holds every needle, nothing written."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    "spec, needles",
    [
        (_with("space.unit", [4, 8]), ["space.unit: unknown key; did you mean 'units'?"]),
        (_with("trials_per_depth", "many"), ["trials_per_depth: expected an integer, got 'many'"]),
        (_with("space.units", "abc"), ["space.units: expected a list of choices like [16, 32, 64]", "got 'abc'"]),
    ],
    ids=["did-you-mean", "wrong-type", "union"],
)
def test_wrong_spec_exits_2_with_one_line(cli, tmp_path, spec, needles):
    _rejected(_search(cli, tmp_path, spec), tmp_path, *needles)


def test_too_many_seeds_on_the_command_line_exits_2(cli, tmp_path):
    proc = _search(cli, tmp_path, SPEC, "--seeds", "100000")
    _rejected(proc, tmp_path, "evaluation.seeds", "from 0 to 1000", "got 100000")


@pytest.mark.parametrize(
    "content, needles",
    [
        ("", ["file is empty"]),
        ("t,y\n1,0.5\n2,inf\n3,0.7\n", ["column 'y'", "infinite value 'inf'", "line 3"]),
        ("t,y\n" + "".join(f"{i},{i / 10}\n" for i in range(12)), ["series has 12 rows", "window 4 + horizon 1"]),
    ],
    ids=["empty", "inf", "too-short"],
)
def test_bad_csv_exits_2_naming_the_file(cli, tmp_path, content, needles):
    (tmp_path / "d.csv").write_text(content)
    _rejected(_search(cli, tmp_path, CSV_SPEC), tmp_path, str(tmp_path / "d.csv"), *needles)


# --- sizes: every one has a limit, checked before anything is read, generated or allocated ----------------------

QUICK = 60  # seconds a refused input may take, CLI start-up included


def _search_quickly(cli, tmp_path, *flags: str):
    """`stacktune search spec.yaml` as _search runs it, asserted to end within QUICK seconds."""
    start = time.monotonic()
    proc = cli(
        "search",
        str(tmp_path / "spec.yaml"),
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        *flags,
        timeout=QUICK,
    )
    assert time.monotonic() - start < QUICK
    return proc


def _refused_quickly(proc, tmp_path, *needles: str) -> None:
    _rejected(proc, tmp_path, *needles)
    assert len(proc.stderr.rstrip().splitlines()[-1]) < 500, proc.stderr[-600:]


def _dataset(**fields) -> dict:
    return {**SPEC, "dataset": fields}


@pytest.mark.parametrize(
    "spec, needles",
    [
        (_with("dataset.window", 10**9), ["dataset.window: expected an integer from 1 to 10000, got 1000000000"]),
        (_with("dataset.horizon", 10**6), ["dataset.horizon: expected an integer from 1 to 10000, got 1000000"]),
        (
            _dataset(name="sine", window=4, length=10**9),
            ["dataset.length: expected an integer from 1 to 1000000, got 1000000000"],
        ),
        (_dataset(name="adding", seq_len=10**6), ["dataset.seq_len: expected an integer from 2 to 10000"]),
        (
            _dataset(name="adding", length=100_000, seq_len=1000),
            ["dataset:", "`length` x `seq_len`", "at most 10000000", "got 100000 x 1000"],
        ),
        (_dataset(csv="d" * 5000 + ".csv", target="y"), ["dataset.csv", "at most 4096 characters"]),
        (_with("space.units", [8, 10**9]), ["space.units: a layer has at most 4096 units, got 1000000000"]),
        (_with("space.units", {"low": 8, "high": 10**6}), ["space.units.high: expected an integer from 1 to 4096"]),
        (_with("space.units", {"choices": [8, 10**6]}), ["space.units.choices", "at most 4096 units, got 1000000"]),
        (_with("space.units", {"params": 10**12}), ["space.units.params", "from 16 to 1000000000"]),
        (_with("space.units", list(range(1, 1001))), ["space.units: give at most 256 units choices, got 1000"]),
        (_with("space.batch_size", [32, 10**7]), ["space.batch_size: a batch holds 1 to 65536 samples"]),
        (_with("trials_per_depth", 10**9), ["trials_per_depth: expected an integer from 1 to 100000, got 1000000000"]),
        (_with("train.epochs", 10**9), ["train.epochs: expected an integer from 1 to 100000, got 1000000000"]),
        (_with("train.batch_size", 10**7), ["train.batch_size: expected an integer from 1 to 65536, got 10000000"]),
        (_with("train.checkpoint_every", 10**9), ["train.checkpoint_every: expected an integer from 0 to 100000"]),
        (_with("depths", list(range(1, 41))), ["depths: a depth must lie in 1..32, got 33"]),
        (_with("evaluation.max_seeds", 10**6), ["evaluation.max_seeds: expected an integer from 2 to 1000"]),
        (_with("sampler.n_startup_trials", 10**9), ["sampler.n_startup_trials: expected an integer from 0 to 100000"]),
        (_with("resources.max_concurrent", 10**9), ["resources.max_concurrent: expected an integer from 1 to 10000"]),
        (_with("baseline.units", 10**6), ["baseline.units: expected an integer from 1 to 4096, got 1000000"]),
        (_with("storage", "sqlite:///" + "s" * 10_000), ["storage: expected a string of at most 4096 characters"]),
        (_with("name", "n" * 200_000), ["name: use letters, digits", "got 'nnnn", "..."]),
        (_with("dataset.name", "q" * 200_000), ["dataset.name: unknown dataset 'qqqq", "...; known datasets: sine"]),
        (
            _dataset(name="sine", window=10_000, length=1_000_000),
            ["dataset 'sine': window 10000 over 1000000 rows makes", "over the 500000000 a prepared set may hold"],
        ),
    ],
    ids=[
        "window",
        "horizon",
        "length",
        "seq-len",
        "adding-steps",
        "csv-path",
        "units-list",
        "units-range",
        "units-choices",
        "units-params",
        "units-many-choices",
        "batch-size-choices",
        "trials",
        "epochs",
        "batch-size",
        "checkpoint-every",
        "depths",
        "max-seeds",
        "startup-trials",
        "max-concurrent",
        "baseline-units",
        "storage-url",
        "huge-name",
        "huge-dataset-name",
        "windows-too-large",
    ],
)
def test_a_size_past_its_limit_exits_2_quickly_naming_the_field_and_the_limit(cli, tmp_path, spec, needles):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, *needles)


def test_too_many_epochs_on_the_command_line_exits_2_quickly(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    proc = _search_quickly(cli, tmp_path, "--epochs", "1000000000")
    _refused_quickly(proc, tmp_path, "train.epochs: expected an integer from 1 to 100000, got 1000000000")


_REST = "depths: [1, 2]\ntrials_per_depth: 2\ntrain: {epochs: 1}\n"


@pytest.mark.parametrize(
    "text, needles",
    [
        (
            yaml_bomb("a") + _REST + "dataset: {name: sine, window: 4}\nname: *a9\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        (
            yaml_bomb("b") + _REST + "name: bad-input\ndataset: {name: sine, window: 4, source: *b9}\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        (
            "m0: &m0 {x: 1, y: 2}\n"
            + "".join(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n" for i in range(1, 9))
            + _REST
            + "name: bad-input\ndataset: {name: sine, window: 4}\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        ("name: &n [*n]\n" + _REST, ["a YAML alias refers to a node that contains it"]),
        ("name: [" + ", ".join(["x"] * 300_000) + "]\n" + _REST, ["too many YAML nodes (more than 20000)"]),
    ],
    ids=["alias-bomb-name", "alias-bomb-dataset-source", "merge-key-bomb", "self-alias", "too-many-nodes"],
)
def test_a_yaml_bomb_exits_2_quickly_with_little_memory(cli, tmp_path, text, needles):
    (tmp_path / "spec.yaml").write_text(text)
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, str(tmp_path / "spec.yaml"), *needles)


def test_a_spec_file_over_1_mib_exits_2_without_being_read(cli, tmp_path):
    with open(tmp_path / "spec.yaml", "wb") as handle:
        handle.truncate(50 << 20)  # sparse: takes no disk space
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(
        proc, tmp_path, str(tmp_path / "spec.yaml"), "file is 52428800 bytes (50 MiB)", "over the 1 MiB limit"
    )


def test_a_csv_file_over_2_gib_exits_2_without_being_read(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(CSV_SPEC))
    with open(tmp_path / "d.csv", "wb") as handle:
        handle.truncate(3 << 30)  # sparse: takes no disk space
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(proc, tmp_path, str(tmp_path / "d.csv"), "file is 3221225472 bytes (3 GiB)", "over the 2 GiB")


def test_a_huge_csv_cell_is_cut_in_the_message(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(CSV_SPEC))
    rows = "".join(f"{i},{i / 10}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("t,y\n" + rows + "40," + "z" * 5_000_000 + "\n")
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(proc, tmp_path, str(tmp_path / "d.csv"), "column 'y' has a non-numeric value 'zzz", "line 42")


def test_a_training_config_past_a_limit_exits_2_quickly(cli, tmp_path):
    config = {"dataset": {"name": "sine", "window": 4}, "model": {"units": [8, 10**9]}, "train": {"lr": 0.01}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    start = time.monotonic()
    proc = cli("train", str(tmp_path / "train.yaml"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db", timeout=QUICK)
    assert time.monotonic() - start < QUICK
    _refused_quickly(proc, tmp_path, "model.units: a layer has at most 4096 units, got 1000000000")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_exits_3_within_seconds(cli, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    start = time.monotonic()
    proc = cli("search", str(path), "--out", str(tmp_path / "o"), "--tracking-uri", uri, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.rstrip().splitlines()[-1].startswith("error: "), proc.stderr
    assert uri in proc.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert not (tmp_path / "o").exists()
