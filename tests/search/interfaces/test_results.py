"""`stacktune report` and `stacktune export` of a search held in a real MLflow store: the comparison.json of the
search run, read as types, gives the same report and files as the search itself did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from mlflow.tracking import MlflowClient

from stacktune.search.tracking import tags

DOCS = REPO / "docs" / "sunspots-depths"
DATA = REPO / "tests" / "search" / "data"


def _publish(uri: str, name: str, comparison: Path, work: Path) -> str:
    """A finished search run of a new experiment `name` holding `comparison` as its comparison.json; returns its id."""
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment(name), tags={tags.ROLE: tags.ROLE_SEARCH, tags.SEARCH: name})
    folder = work / run.info.run_id
    folder.mkdir()
    (folder / "comparison.json").write_bytes(comparison.read_bytes())
    client.log_artifact(run.info.run_id, str(folder / "comparison.json"))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module; each test's search is an experiment of its own."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.mark.parametrize(
    ("comparison", "expected"),
    [(DOCS / "comparison.json", DOCS / "report.md"), (DATA / "comparison-before-best-set.json", None)],
    ids=["sunspots-depths", "before-best-set"],
)
def test_report_rebuilds_the_same_report_from_mlflow(tmp_path, store, comparison, expected):
    name = f"report-{comparison.stem}"
    run_id = _publish(store, name, comparison, tmp_path)
    expected = expected or DATA / "report-before-best-set.md"

    proc = run_cli("report", name, "--out", str(tmp_path / "out"), "--tracking-uri", store, "--json", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["mlflow_run_id"] == run_id and answer["best_depth"] == 2
    folder = tmp_path / "out" / name
    assert (folder / "report.md").read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
    plots = [
        "test_loss_by_depth.png",
        "expected_best.png",
        "expected_best_seconds.png",
        "val_curves.png",
        "importance.png",
    ]
    assert answer["files"] == [str(folder / "report.md")] + [str(folder / p) for p in plots]
    attached = {a.path for a in MlflowClient(store).list_artifacts(run_id, "report")}
    assert attached == {f"report/{name}" for name in ["report.md", *plots]}


def test_export_writes_back_the_comparison_it_read(tmp_path, store):
    _publish(store, "export", DATA / "comparison-before-best-set.json", tmp_path)

    proc = run_cli("export", "export", "--out", str(tmp_path / "out"), "--tracking-uri", store, cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "export"
    assert (folder / "comparison.json").read_bytes() == (DATA / "comparison-before-best-set.json").read_bytes()
    assert sorted(p.name for p in (folder / "best").iterdir()) == [
        "depth-2.yaml",
        "depth-3.yaml",
        "depth-6.yaml",
        "overall.yaml",
    ]
    assert "trial: d2-t11" in (folder / "best" / "overall.yaml").read_text()


def test_a_comparison_it_cannot_read_is_one_line_and_exit_2(tmp_path, store):
    data = json.loads((DOCS / "comparison.json").read_text())
    data["verdict"] = [2]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    _publish(store, "broken", broken, tmp_path)

    for command in ("report", "export"):
        proc = run_cli(command, "broken", "--out", str(tmp_path / "out"), "--tracking-uri", store, cwd=tmp_path)

        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1] == (
            "error: search 'broken': comparison.json: verdict must be an object, got [2]"
        )
        assert not (tmp_path / "out" / "broken").exists()
