"""Bad input: one line `error: …`, the right exit status, no traceback, nothing started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml
from conftest import EXAMPLES


def _write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def _one_error_line(proc, *needles: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


GOOD_TRAIN = {"dataset": {"name": "sine", "window": 8}, "model": {"units": [8]}, "train": {"lr": 0.01, "epochs": 1}}


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"train": {"lr": -1, "epochs": 1}}, ["train.lr", "-1"]),
        ({"model": {"units": []}}, ["model.units"]),
        ({"model": {"units": [8, 0]}}, ["model.units", "0"]),
        ({"model": {"units": [8], "dropout": 1.5}}, ["model.dropout", "1.5"]),
        ({"dataset": {"name": "nope", "window": 8}}, ["dataset.name", "nope"]),
        ({"dataset": {"name": "sine"}}, ["window"]),
        ({"extra": 1}, ["extra"]),
    ],
)
def test_invalid_train_config_exits_2(cli, tmp_path, change, needles):
    proc = cli(
        "train", _write(tmp_path, "bad.yaml", {**GOOD_TRAIN, **change}), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"
    )
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, *needles)
    assert not (tmp_path / "m.db").exists()


def test_missing_file_and_broken_yaml_exit_2(cli, tmp_path):
    proc = cli("train", str(tmp_path / "absent.yaml"))
    assert proc.returncode == 2
    _one_error_line(proc, "absent.yaml")
    proc = cli("train", _write(tmp_path, "broken.yaml", "model: [units\n  - : :"))
    assert proc.returncode == 2
    _one_error_line(proc, "broken.yaml", "YAML")


def test_bad_csv_names_file_column_and_row(cli, tmp_path):
    (tmp_path / "d.csv").write_text("t,y\n1,0.5\n2,oops\n3,0.7\n")
    cfg = {**GOOD_TRAIN, "dataset": {"csv": "d.csv", "target": "y", "window": 2}}
    proc = cli("train", _write(tmp_path, "csv.yaml", cfg))
    assert proc.returncode == 2
    _one_error_line(proc, "d.csv", "y", "oops")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_exits_3_before_training(cli, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    proc = cli("train", _write(tmp_path, "ok.yaml", GOOD_TRAIN), "--tracking-uri", uri)
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, uri)
    proc = cli("search", str(EXAMPLES / "demo.yaml"), "--tracking-uri", uri, "--out", str(tmp_path / "o"))
    assert proc.returncode == 3, proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "uri, status, needles",
    [
        ("bogus://x", 2, ["tracking URI bogus://x", "unknown kind 'bogus'"]),
        ("postgresql://ann:s3cretpw@127.0.0.1:{port}/db", 3, ["cannot reach the MLflow store", "ann:***@"]),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/stacktune_no_such_db", 3, ["stacktune_no_such_db"]),
        ("mysql://ann:s3cretpw@127.0.0.1:{port}/db", 2, ["needs the Python package", "ann:***@"]),
    ],
)
def test_a_database_or_unknown_tracking_store_fails_in_one_line_before_training(cli, tmp_path, uri, status, needles):
    uri = uri.format(port=_free_port())
    train = ("train", _write(tmp_path, "ok.yaml", GOOD_TRAIN))
    for args in (train, ("search", str(EXAMPLES / "demo.yaml"), "--out", str(tmp_path / "o"))):
        proc = cli(*args, "--tracking-uri", uri)
        assert proc.returncode == status, proc.stderr
        _one_error_line(proc, *needles)
        assert "s3cretpw" not in proc.stderr + proc.stdout
        assert not (tmp_path / "o").exists()


def test_a_store_mlflow_cannot_open_fails_in_one_line_and_leaves_an_earlier_search_alone(cli, tmp_path):
    (tmp_path / "bad.db").write_text("not a database")
    earlier = tmp_path / "o" / "demo-sunspots"
    earlier.mkdir(parents=True)
    (earlier / ".stacktune-search").write_text("search demo-sunspots\n")
    (earlier / "comparison.json").write_text("{}")
    uri = f"sqlite:///{tmp_path}/bad.db"
    proc = cli("search", str(EXAMPLES / "demo.yaml"), "--tracking-uri", uri, "--out", str(tmp_path / "o"))
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, "cannot open the MLflow store", "not a database")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["demo-sunspots"]
    assert (earlier / "comparison.json").read_text() == "{}"


def test_unreachable_ray_cluster_exits_3(cli, tmp_path):
    proc = cli(
        "search",
        str(EXAMPLES / "demo.yaml"),
        "--address",
        f"127.0.0.1:{_free_port()}",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        "--out",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, "Ray")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "change, needles",
    [
        ({"depths": [0, 2]}, ["depths", "0"]),
        ({"depths": [2, 2]}, ["depths"]),
        ({"trials_per_depth": 0}, ["trials_per_depth"]),
        ({"space": {"lr": [0.1, 0.01]}}, ["space.lr"]),
        ({"space": {"units": [16, -4]}}, ["space.units", "-4"]),
        ({"name": "has space"}, ["name"]),
    ],
)
def test_invalid_search_spec_exits_2_and_starts_nothing(cli, tmp_path, change, needles):
    spec = {**yaml.safe_load((EXAMPLES / "demo.yaml").read_text()), **change}
    proc = cli(
        "search",
        _write(tmp_path, "spec.yaml", spec),
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
    )
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, *needles)
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    "flag, value, field", [("--trials-per-depth", "0", "trials_per_depth"), ("--origins", "13", "origins")]
)
def test_bad_override_flag_exits_2(cli, tmp_path, flag, value, field):
    proc = cli("search", str(EXAMPLES / "demo.yaml"), flag, value, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    _one_error_line(proc, field)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, status, needles",
    [
        (("jobs",), 2, ["--address", "RAY_ADDRESS"]),
        (("logs", "some-job", "--address", "ray://127.0.0.1:10001"), 2, ["http://HEAD:8265", "ray://127.0.0.1:10001"]),
        (("stop", "some-job", "--address", "http://127.0.0.1:{port}"), 3, ["cannot reach the Ray Jobs API"]),
        (("submit", "{spec}", "--address", "http://127.0.0.1:{port}"), 3, ["cannot reach the Ray Jobs API"]),
        (("search", "{spec}", "--address", "http://127.0.0.1:{port}"), 2, ["Jobs API", "stacktune submit"]),
    ],
)
def test_cluster_commands_without_a_reachable_cluster_exit_in_one_line(cli, tmp_path, args, status, needles):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    spec = str(EXAMPLES / "demo.yaml")
    proc = cli(*(a.format(port=port, spec=spec) for a in args))
    assert proc.returncode == status, proc.stderr
    _one_error_line(proc, *needles)


def test_submit_checks_the_spec_before_contacting_the_cluster(cli, tmp_path):
    spec = _write(tmp_path, "bad.yaml", {**yaml.safe_load((EXAMPLES / "demo.yaml").read_text()), "depths": [0]})
    proc = cli("submit", spec, "--address", "127.0.0.1:1")  # nothing listens there, and it is never asked
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, "depths", "0")


@pytest.mark.parametrize("command", [("search", str(EXAMPLES / "demo.yaml")), ("export", "demo-sunspots")])
def test_a_model_name_the_registry_would_refuse_exits_2_before_anything_runs(cli, tmp_path, command):
    proc = cli(*command, "--out", str(tmp_path / "o"), "--register", "team/lstm")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: --register 'team/lstm': Invalid model name 'team/lstm'. Names cannot contain '/' or ':'."
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_training_seed_numpy_cannot_take_exits_2(cli, tmp_path):
    proc = cli("train", _write(tmp_path, "ok.yaml", GOOD_TRAIN), "--seed", str(2**64))
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, "train.seed: expected an integer from 0 to 4294967295", str(2**64))
    assert not (tmp_path / "mlflow.db").exists()


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only tmpfs of the test's own (mounting needs root, as CI has)."""
    disk = tmp_path / "ro"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(disk)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("command", ["export", "report"])
def test_export_and_report_refuse_an_out_they_cannot_write_before_asking_mlflow(cli, tmp_path, read_only_disk, command):
    uri = f"sqlite:///{tmp_path}/m.db"  # never opened: the folder is checked first
    proc = cli(command, "demo-sunspots", "--out", "/dev/null", "--tracking-uri", uri)
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, "--out /dev/null: /dev/null is not a folder")
    proc = cli(command, "demo-sunspots", "--out", str(read_only_disk), "--tracking-uri", uri)
    assert proc.returncode == 4, proc.stderr
    _one_error_line(proc, f"{read_only_disk} is on a read-only disk; nothing was written")
    assert not (tmp_path / "m.db").exists()


def test_export_and_report_of_a_search_killed_before_it_published_exit_2_and_say_how_to_finish_it(cli, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(tracking_uri=uri)
    # What `kill -9` leaves: the search's run is still RUNNING, nothing was published.
    client.create_run(client.create_experiment("killed"), tags={"stacktune.role": "search"})
    for command in ("export", "report"):
        proc = cli(command, "killed", "--out", str(tmp_path / "o"), "--tracking-uri", uri)
        assert proc.returncode == 2, proc.stderr
        _one_error_line(proc, "search 'killed' has no finished run", "stacktune search SPEC --resume")


def test_datasets_says_when_its_answer_cannot_be_written(tmp_path):
    command = [sys.executable, "-m", "stacktune.search.cli", "datasets"]
    for args, shell in (("--json > /dev/full", "full"), (">&-", "closed")):
        proc = subprocess.run(
            f"{' '.join(command)} {args}", shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=60
        )
        assert proc.returncode == 1, (shell, proc.stderr)
        _one_error_line(proc, "stdout")


def test_submit_refuses_a_ray_address_that_is_no_address(tmp_path):
    # Not through `cli`, which leaves out the caller's RAY_ADDRESS.
    proc = subprocess.run(
        [sys.executable, "-m", "stacktune.search.cli", "submit", str(EXAMPLES / "demo.yaml")],
        env={**os.environ, "RAY_ADDRESS": "garbage"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc, "$RAY_ADDRESS: expected the cluster's dashboard like http://HEAD:8265", "'garbage'")
