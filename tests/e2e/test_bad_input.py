"""Wrong specs and data through the real command: exit 2, one `error:` line that names the field or file,
the value and what would be valid, and nothing written; an unreachable tracking server: exit 3 within seconds."""

from __future__ import annotations

import socket
import time

import pytest
import yaml

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
