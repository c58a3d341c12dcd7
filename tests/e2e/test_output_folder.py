"""What a search may delete: only an earlier search of its own name, and only once the new one has passed its
checks and started; a folder stacktune did not make is never touched."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_spec
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def _search(tmp_path, spec: str, *extra: str, ray: dict | None = None):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", *extra, cwd=tmp_path, env=ray)


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


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error(proc, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_an_earlier_search_survives_new_ones_that_fail_to_start_and_is_replaced_by_one_that_runs(tmp_path, shared_ray):
    spec = _tiny(tmp_path, name="held")
    first = _search(tmp_path, spec, ray=shared_ray)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "out" / "held"
    before = _snapshot(folder)
    assert {"comparison.json", "report.md", "best/overall.yaml"} <= set(before)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("held")
    runs_before = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}

    # A failed start leaves the earlier search byte for byte, and its runs as they were.
    proc = _search(tmp_path, spec, "--storage-path", "/dev/null/x", ray=shared_ray)
    assert "--storage-path" in _one_error(proc) and "/dev/null" in proc.stderr
    assert _snapshot(folder) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".held.lock", "held"]
    runs_after = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert runs_after == runs_before

    # No node of the local Ray can hold a trial of 64 CPUs: refused before anything is deleted.
    proc = _search(tmp_path, _tiny(tmp_path, name="held", resources={"cpus_per_trial": 64}), ray=shared_ray)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cpus_per_trial" in proc.stderr.strip().splitlines()[-1]
    assert _snapshot(folder) == before
    assert not list((tmp_path / "out").glob(".held.replaced-*"))

    # A new search of the name that runs replaces the earlier one and leaves nothing aside.
    second = _search(tmp_path, _tiny(tmp_path, name="held"), ray=shared_ray)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (
        json.loads((folder / "comparison.json").read_text())["mlflow_run_id"]
        == json.loads(second.stdout)["mlflow_run_id"]
        != json.loads(first.stdout)["mlflow_run_id"]
    )
    assert (folder / ".stacktune-search").exists()
    assert not list((tmp_path / "out").glob(".held.replaced-*"))


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_folder_of_user_files_named_like_a_searchs_is_never_touched(tmp_path, resume):
    mine = tmp_path / "out" / "mine"
    mine.mkdir(parents=True)
    for name, text in {"optuna.journal": "{}\n", "comparison.json": "{}\n", "notes.txt": "my notes\n"}.items():
        (mine / name).write_text(text)
    before = _snapshot(mine)
    proc = _search(tmp_path, _tiny(tmp_path, name="mine"), *(["--resume"] if resume else []))
    assert "holds no stacktune search" in _one_error(proc)
    assert _snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(before)


def test_a_link_to_another_search_and_an_out_inside_one_are_refused_untouched(tmp_path):
    keep = tmp_path / "out" / "keep"
    keep.mkdir(parents=True)
    (keep / ".stacktune-search").write_text("search keep\n")
    (keep / "comparison.json").write_text("{}\n")
    (tmp_path / "out" / "alias").symlink_to(keep)
    before = _snapshot(keep)

    proc = _search(tmp_path, _tiny(tmp_path, name="alias"), "--resume")
    assert "search 'keep'" in _one_error(proc)
    proc = run_cli(
        "search", _tiny(tmp_path, name="best"), "--out", "out/keep", "--tracking-uri", "sqlite:///m.db", cwd=tmp_path
    )
    assert "search 'keep'" in _one_error(proc)
    assert _snapshot(keep) == before and sorted(p.name for p in keep.iterdir()) == [
        ".stacktune-search",
        "comparison.json",
    ]
