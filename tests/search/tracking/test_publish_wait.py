"""Publishing a finished search waits for a tracking server that stops answering, for a bounded time."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from conftest import EXAMPLES, MlflowServer, free_port
from mlflow.tracking import MlflowClient

from stacktune.search.errors import ResultsNotPublished
from stacktune.search.evaluation import kept_evaluation
from stacktune.search.publishing.exports import publish
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.tracking.buffer import BufferedWriter
from stacktune.search.tracking.run_tree import RunTree
from stacktune.search.verdict.comparison import Comparison, DepthEntry

LOCAL_FILES = ["best/depth-1.yaml", "best/overall.yaml", "comparison.json", "expected_best.png", "report.md"]


def _comparison(tree: RunTree) -> Comparison:
    config = {
        "dataset": {"name": "sunspots", "window": 24, "horizon": 1},
        "model": {"units": [8], "dropout": 0.0},
        "train": {"lr": 0.01, "epochs": 3, "batch_size": 32},
    }
    entry = DepthEntry(
        depth=1,
        best_val_loss=0.5,
        best_config=config,
        trials={"completed": 1, "pruned": 0, "failed": 0},
        params=100,
        mlflow_run_id=tree.depth_runs[1],
        best_trial={"name": "d1-t00", "number": 0, "mlflow_run_id": "-"},
        expected_best=[0.5],
        expected_best_std=[0.0],
    )
    return Comparison(
        search="held",
        experiment_id=tree.experiment_id,
        mlflow_run_id=tree.search_id,
        dataset=config["dataset"],
        task="regression",
        trials_per_depth=1,
        depths=[entry],
        best_depth=1,
    )


def _local_files(out) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
def test_publishing_waits_while_the_server_is_down_and_attaches_everything_once_it_is_back(tmp_path, warned):
    server = MlflowServer(tmp_path)
    server.start()
    try:
        client = MlflowClient(tracking_uri=server.uri)
        experiment = client.create_experiment("held")
        search = client.create_run(experiment, run_name="search").info.run_id
        depth = client.create_run(experiment, run_name="depth-1").info.run_id
        tree = RunTree(experiment, search, {1: depth})
        writer = BufferedWriter(client, retry_after=0.2, max_retry_after=1.0)
        out = tmp_path / "out"
        out.mkdir()
        server.stop()

        def restart_once_publishing_waits():
            while writer.answering:
                time.sleep(0.05)
            server.start()

        restarter = threading.Thread(target=restart_once_publishing_waits)
        restarter.start()
        publish(_comparison(tree), out, writer=writer, tree=tree, wait=300)
        restarter.join()
        err = warned()
        assert "does not answer" in err and f"the results wait for it (at most 300 s), kept meanwhile in {out}" in err
        assert "answers again" in err
        assert _local_files(out) == LOCAL_FILES

        assert {a.path for a in client.list_artifacts(search)} == {"comparison.json", "report"}
        assert {a.path for a in client.list_artifacts(search, "report")} == {
            "report/report.md",
            "report/expected_best.png",
        }
        assert [client.get_run(r).info.status for r in (search, depth)] == ["FINISHED", "FINISHED"]
    finally:
        server.stop()


def test_publishing_gives_up_after_its_wait_in_one_line_with_the_results_kept_on_disk(tmp_path, warned):
    # Nothing listens on this port: the server is down for the whole wait.
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}")
    tree = RunTree("1", "search-run", {1: "depth-run"})
    writer = BufferedWriter(client, retry_after=0.2, max_retry_after=0.5)
    started = time.monotonic()
    with pytest.raises(ResultsNotPublished) as gave_up:
        publish(_comparison(tree), tmp_path, writer=writer, tree=tree, wait=2)
    assert 2 <= time.monotonic() - started < 30
    message = str(gave_up.value)
    assert gave_up.value.exit_code == 3 and "\n" not in message
    assert "did not answer for 2 s" in message and str(tmp_path) in message and "--resume" in message
    assert _local_files(tmp_path) == LOCAL_FILES
    assert "does not answer" in warned()


def _evaluated(tree: RunTree, seeds: list[int]) -> Comparison:
    comparison = _comparison(tree)
    comparison.evaluation = {"seeds": seeds, "refit": "train", "top_k": 1, "confidence": 0.95, "jobs": 2}
    return comparison


def test_a_resume_publishes_the_kept_evaluation_only_when_it_is_the_one_it_would_make():
    spec = SearchSpec.model_validate(
        {**yaml.safe_load((EXAMPLES / "demo.yaml").read_text()), "evaluation": {"seeds": 2}}
    )
    tree = RunTree("1", "search-run", {1: "depth-run"})
    summary = _comparison(tree)  # what the resume's summary finds: no new trial
    assert kept_evaluation(spec, summary, _evaluated(tree, [1000, 1001]))
    # Another search run (the earlier one had finished), other seeds, a trial more, or no evaluation at all: evaluate.
    assert not kept_evaluation(spec, summary, _evaluated(RunTree("1", "other-run", {1: "depth-run"}), [1000, 1001]))
    assert not kept_evaluation(spec, summary, _evaluated(tree, [1000, 1001, 1002]))
    more = _evaluated(tree, [1000, 1001])
    more.depths[0].trials = {"completed": 2, "pruned": 0, "failed": 0}
    assert not kept_evaluation(spec, summary, more)
    assert not kept_evaluation(spec, summary, _comparison(tree))
