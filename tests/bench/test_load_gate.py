"""`python -m benchmarks` waits for an idle machine and refuses to measure on a busy one unless told to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common

REPO = Path(__file__).resolve().parents[2]


def test_gate_waits_while_busy_and_records_what_it_saw(monkeypatch):
    loads = iter([2.0, 1.1, 0.4])
    monkeypatch.setattr(common, "load_per_core", lambda: next(loads))
    slept: list[float] = []
    seen = common.wait_for_idle(0.5, 600, poll_s=10, sleep=slept.append)
    assert slept == [10, 10]
    assert seen["load_per_core_first_seen"] == 2.0 and seen["load_per_core_at_start"] == 0.4
    assert seen["gate_per_core"] == 0.5


def test_gate_refuses_once_the_wait_is_over(monkeypatch):
    monkeypatch.setattr(common, "load_per_core", lambda: 3.0)
    with pytest.raises(common.BusyMachine, match=r"load average is 3\.00 per core .* --ignore-load"):
        common.wait_for_idle(0.5, 0, sleep=lambda s: None)


def test_an_idle_machine_starts_at_once(monkeypatch):
    monkeypatch.setattr(common, "load_per_core", lambda: 0.1)
    seen = common.wait_for_idle(0.5, 600, sleep=lambda s: pytest.fail("waited on an idle machine"))
    assert seen["waited_s"] < 1


def test_busy_machine_exits_with_one_line_and_writes_nothing(tmp_path):
    # a gate no machine meets: the command refuses before measuring anything
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "verdict", "--max-load", "1e-9", "--wait", "0"]
        + ["--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m benchmarks: the load average is"), proc.stderr
    assert not proc.stdout and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["--max-load", "0"], ["--max-load", "x"], ["--wait", "-1"]])
def test_bad_gate_values_exit_2(args):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("python -m benchmarks: error: argument")
