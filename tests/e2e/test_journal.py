"""A search resumes past a journal whose last write was cut off, and refuses one damaged elsewhere."""

from __future__ import annotations

import json

from conftest import run_cli, write_spec


def test_resume_repairs_a_torn_journal_end_and_refuses_a_damaged_one(tmp_path, shared_ray, mlflow_store):
    spec = write_spec(tmp_path, name="torn", depths=[1], trials_per_depth=2, train={"epochs": 2, "batch_size": 32})
    args = ("search", spec, "--out", "out", "--tracking-uri", mlflow_store(tmp_path), "--json")
    first = run_cli(*args, cwd=tmp_path, env=shared_ray)
    assert first.returncode == 0, first.stderr[-3000:]
    journal = tmp_path / "out" / "torn" / "optuna.journal"
    whole = journal.read_bytes()

    journal.write_bytes(whole[:-40])  # the last trial's end was being written when the machine went down
    resumed = run_cli(*args, "--resume", cwd=tmp_path, env=shared_ray)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cut off mid-write" in resumed.stderr
    assert [sum(d["trials"].values()) for d in json.loads(resumed.stdout)["depths"]] == [2]
    assert len(list(journal.parent.glob("optuna.journal.torn-*"))) == 1

    lines = journal.read_bytes().split(b"\n")
    lines[3] = b"{not json"
    damaged = b"\n".join(lines)
    journal.write_bytes(damaged)
    refused = run_cli(*args, "--resume", cwd=tmp_path, env=shared_ray)
    assert refused.returncode == 2, refused.stderr[-3000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "optuna.journal is damaged at line 4" in last
    assert "Traceback" not in refused.stderr
    assert journal.read_bytes() == damaged
