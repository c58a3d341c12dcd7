"""What a search may delete: only an earlier search of its own name, and only once the new one has passed its
checks and started; a folder stacktune did not make is never touched."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_spec

pytestmark = pytest.mark.slow


def _search(tmp_path, spec: str, *extra: str):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", *extra, cwd=tmp_path)


def _tiny(tmp_path, **changes) -> str:
    base = {"depths": [1], "trials_per_depth": 1, "train": {"epochs": 1, "batch_size": 64}}
    return write_spec(tmp_path, **{**base, **changes})


def test_a_folder_stacktune_did_not_make_is_refused_and_left_alone(tmp_path):
    mine = tmp_path / "out" / "src"
    mine.mkdir(parents=True)
    (mine / "main.py").write_text("print('my code')\n")
    proc = _search(tmp_path, _tiny(tmp_path, name="src"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "holds no stacktune search" in last and "Traceback" not in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["main.py"]


def test_an_earlier_search_survives_a_new_one_that_fails_its_checks(tmp_path):
    first = _search(tmp_path, _tiny(tmp_path, name="kept"))
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "out" / "kept"
    before = (folder / "comparison.json").read_text()

    # No node of the local Ray can hold a trial of 64 CPUs: refused before anything is deleted.
    proc = _search(tmp_path, _tiny(tmp_path, name="kept", resources={"cpus_per_trial": 64}))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cpus_per_trial" in proc.stderr.strip().splitlines()[-1]
    assert (folder / "comparison.json").read_text() == before
    assert not list((tmp_path / "out").glob(".kept.replaced-*"))


def test_a_new_search_of_the_name_replaces_the_earlier_one_and_leaves_nothing_aside(tmp_path):
    spec = _tiny(tmp_path, name="again")
    assert _search(tmp_path, spec).returncode == 0
    second = _search(tmp_path, spec)
    assert second.returncode == 0, second.stderr[-2000:]
    folder = tmp_path / "out" / "again"
    assert (
        json.loads((folder / "comparison.json").read_text())["mlflow_run_id"]
        == json.loads(second.stdout)["mlflow_run_id"]
    )
    assert (folder / ".stacktune-search").exists()
    assert not list((tmp_path / "out").glob(".again.replaced-*"))
