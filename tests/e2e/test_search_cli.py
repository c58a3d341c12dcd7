"""`stacktune search` end to end: real local Ray, a real Optuna journal, a real MLflow store."""

from __future__ import annotations

import json
import math
import os

import optuna
import pytest
import yaml
from conftest import EXAMPLES, run_cli
from mlflow.tracking import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

pytestmark = pytest.mark.slow
DEPTHS = [1, 2, 3]
TRIALS = 4
EPOCHS = 3
SEEDS = 2


@pytest.fixture(scope="module")
def search(tmp_path_factory, mlflow_store):
    """One small search through the CLI, shared by the tests that read it back."""
    work = tmp_path_factory.mktemp("search")
    uri = mlflow_store(work)
    proc = run_cli(
        "search",
        str(EXAMPLES / "sunspots-depths.yaml"),
        "--name",
        "e2e",
        "--depths",
        "1,2,3",
        "--trials-per-depth",
        str(TRIALS),
        "--epochs",
        str(EPOCHS),
        "--seeds",
        str(SEEDS),
        "--replicates",
        "1",  # one search per depth: the tree this file reads is search -> depth -> trial
        "--origins",
        "1",  # one retraining per seed: each eval run's loss is the seed's loss
        "--out",
        str(work / "out"),
        "--tracking-uri",
        uri,
        "--json",
        "-q",  # after the subcommand, as well as before it
        cwd=work,
        # No writable home: Ray's token, MLflow and Matplotlib must not need one.
        env={"HOME": "/dev/null"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    comparison = json.loads(proc.stdout)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {
        "work": work,
        "uri": uri,
        "comparison": comparison,
        "client": client,
        "experiment": experiment,
        "runs": runs,
        "proc": proc,
    }


def _role(runs, role):
    return [r for r in runs if r.data.tags.get("stacktune.role") == role]


def test_stderr_holds_only_warnings_with_q_after_the_subcommand_and_no_usable_home(search):
    lines = [line for line in search["proc"].stderr.splitlines() if line.strip()]
    assert all(line.startswith("warning: ") for line in lines), search["proc"].stderr[-3000:]
    assert not any("Token authentication" in line for line in lines)


def test_stdout_is_exactly_comparison_json(search):
    on_disk = json.loads((search["work"] / "out" / "e2e" / "comparison.json").read_text())
    assert search["comparison"] == on_disk
    assert [d["depth"] for d in on_disk["depths"]] == DEPTHS
    assert on_disk["experiment_id"] == search["experiment"].experiment_id


def test_the_run_tree_is_search_then_depths_then_trials(search):
    runs = search["runs"]
    (top,) = _role(runs, "search")
    depth_runs = _role(runs, "depth")
    assert sorted(r.info.run_name for r in depth_runs) == [f"depth-{d}" for d in DEPTHS]
    assert all(r.data.tags["mlflow.parentRunId"] == top.info.run_id for r in depth_runs)
    by_depth = {int(r.data.tags["stacktune.depth"]): r.info.run_id for r in depth_runs}
    trials = _role(runs, "trial")
    assert len(trials) == len(DEPTHS) * TRIALS
    for run in trials:
        depth = int(run.data.tags["stacktune.depth"])
        assert run.data.tags["mlflow.parentRunId"] == by_depth[depth]
        assert run.info.run_name.startswith(f"d{depth}-t")
        assert run.data.tags["stacktune.state"] in {"completed", "pruned", "failed"}
        assert run.data.tags["stacktune.node_id"]


def test_each_depth_gets_exactly_its_budget_and_optuna_agrees(search):
    storage = JournalStorage(JournalFileBackend(str(search["work"] / "out" / "e2e" / "optuna.journal")))
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert set(summaries) == {f"e2e.depth-{d}" for d in DEPTHS}
    for entry in search["comparison"]["depths"]:
        study = optuna.load_study(study_name=f"e2e.depth-{entry['depth']}", storage=storage)
        trials = study.get_trials()
        assert len(trials) == TRIALS
        assert all(t.state.is_finished() for t in trials)
        assert sum(entry["trials"].values()) == TRIALS
        assert entry["best_val_loss"] == pytest.approx(study.best_value)
        # One width per layer, and only this depth's layers.
        assert set(study.best_params) >= {f"units_{i}" for i in range(entry["depth"])}
        assert f"units_{entry['depth']}" not in study.best_params


def test_trials_carry_params_and_per_epoch_histories(search):
    client = search["client"]
    for run in _role(search["runs"], "trial"):
        params = run.data.params
        depth = int(params["depth"])
        assert {f"units_{i}" for i in range(depth)} <= set(params)
        assert float(params["lr"]) > 0
        assert int(params["epochs"]) == EPOCHS
        if run.data.tags["stacktune.state"] != "completed":
            continue
        for key in ("train_loss", "val_loss"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, EPOCHS + 1))
        assert run.data.metrics["n_params"] > 0
        assert "test_loss" not in run.data.metrics


def test_no_run_is_left_running(search):
    assert all(r.info.status == "FINISHED" for r in search["runs"]), {
        r.info.run_name: r.info.status for r in search["runs"]
    }


def test_best_trials_log_weights_and_config_and_the_search_holds_comparison(search):
    client = search["client"]
    (top,) = _role(search["runs"], "search")
    assert "comparison.json" in [a.path for a in client.list_artifacts(top.info.run_id)]
    assert top.data.tags["stacktune.best_depth"] == str(search["comparison"]["best_depth"])
    assert search["experiment"].tags.get("mlflow.experimentKind") == "custom_model_development"
    for entry in search["comparison"]["depths"]:
        run_id = entry["best_trial"]["mlflow_run_id"]
        assert {"model.pt", "config.yaml"} <= {a.path for a in client.list_artifacts(run_id)}
        depth_run = client.get_run(entry["mlflow_run_id"])
        assert depth_run.data.metrics["best_val_loss"] == pytest.approx(entry["best_val_loss"])


def test_export_then_train_reproduces_the_best_val_loss(search, tmp_path):
    work, uri = search["work"], search["uri"]
    proc = run_cli("export", "e2e", "--out", str(tmp_path), "--tracking-uri", uri, "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["search"] == "e2e" and answer["best_depth"] == search["comparison"]["best_depth"]
    assert answer["conclusion"] == search["comparison"]["conclusion"]
    exported = tmp_path / "e2e" / "best" / "overall.yaml"
    assert str(exported) in answer["files"] and all(os.path.isfile(f) for f in answer["files"])
    original = work / "out" / "e2e" / "best" / "overall.yaml"
    assert yaml.safe_load(exported.read_text()) == yaml.safe_load(original.read_text())
    proc = run_cli("train", str(exported), "--json", "--tracking-uri", uri, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    reported = search["comparison"]["depths"][
        [d["depth"] for d in search["comparison"]["depths"]].index(search["comparison"]["best_depth"])
    ]["best_val_loss"]
    assert math.isclose(result["val_loss"], reported, rel_tol=0.01)


def test_a_search_keeps_its_studies_in_postgresql_when_the_spec_names_it(
    tmp_path, postgres_url, shared_ray, mlflow_store
):
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    spec.update(name="pg", depths=[1, 2], trials_per_depth=2, storage=postgres_url)
    spec["train"]["epochs"] = 1
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cli(
        "search",
        "spec.yaml",
        "--seeds",
        "0",
        "--out",
        "out",
        "--tracking-uri",
        mlflow_store(tmp_path),
        "--json",
        cwd=tmp_path,
        env=shared_ray,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "out" / "pg" / "optuna.journal").exists()
    for depth in (1, 2):
        study = optuna.load_study(study_name=f"pg.depth-{depth}", storage=postgres_url)
        assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 2


def test_each_best_and_the_fixed_setting_are_retrained_over_seeds_and_logged_as_eval_runs(search):
    runs = search["runs"]
    depth_ids = {r.info.run_id: int(r.data.tags["stacktune.depth"]) for r in _role(runs, "depth")}
    evals = _role(runs, "eval")
    assert len(evals) == len(DEPTHS) * 2 * SEEDS
    for run in evals:
        assert depth_ids[run.data.tags["mlflow.parentRunId"]] == int(run.data.tags["stacktune.depth"])
        assert run.data.tags["stacktune.eval_kind"] in {"tuned", "fixed"}
        assert run.data.metrics["test_loss"] > 0
    comparison = search["comparison"]
    assert comparison["evaluation"]["finished"] == len(evals)
    for entry in comparison["depths"]:
        mine = [r for r in evals if int(r.data.tags["stacktune.depth"]) == entry["depth"]]
        tuned = sorted(
            (int(r.data.tags["stacktune.seed"]), r.data.metrics["test_loss"])
            for r in mine
            if r.data.tags["stacktune.eval_kind"] == "tuned"
        )
        assert [loss for _, loss in tuned] == pytest.approx(entry["test_losses"])
        assert entry["seeds"] == [seed for seed, _ in tuned] and len(entry["seeds"]) == SEEDS
        low, high = entry["test_loss_ci95"]
        assert low <= entry["test_loss_mean"] <= high
        assert entry["fixed"]["test_loss_mean"] > 0 and len(entry["fixed"]["test_losses"]) == SEEDS
        assert len(entry["expected_best"]) == TRIALS
        # Best trial configs are retrained with the search's settings, units per layer included.
        assert len(entry["best_config"]["model"]["units"]) == entry["depth"]
    verdict = comparison["verdict"]
    assert len(verdict["pairs"]) == 3
    # Two seeds per depth can never decide three depths: no winner is named, and the seeds needed are said.
    assert verdict["winner"] is None and verdict["undecided"] and verdict["needed_seeds"] > SEEDS
    assert f"at least {verdict['needed_seeds']} are needed" in comparison["conclusion"]
    assert "too_few_seeds" in {w["code"] for w in comparison["warnings"]}
    # Two seeds cannot show the settings differ or alike: "cannot tell yet", unless the naive forecast settles it.
    assert comparison["conclusion_changed"] in (True, None) and comparison["conclusion_reasons"]


def test_the_naive_forecast_is_scored_on_the_same_test_split_and_tagged(search):
    comparison = search["comparison"]
    (persistence,) = [b for b in comparison["baselines"] if b["kind"] == "persistence"]
    assert 0 < persistence["loss"] < 10
    for entry in comparison["depths"]:
        assert entry["skill"] == pytest.approx(1 - entry["test_loss_mean"] / persistence["loss"])
    (top,) = _role(search["runs"], "search")
    assert top.data.metrics["naive_persistence_test_loss"] == pytest.approx(persistence["loss"])
    codes = top.data.tags["stacktune.warnings"].split(",")
    assert codes == [w["code"] for w in comparison["warnings"]]
    # Three epochs are far too few: every depth's best trial peaked at its last epoch, and the report says so.
    assert {w["depth"] for w in comparison["warnings"] if w["code"] == "best_epoch_at_end"} <= set(DEPTHS)
    report = (search["work"] / "out" / "e2e" / "report.md").read_text()
    assert "## Against a naive forecast" in report and "## Warnings" in report


def test_the_report_and_plots_are_written_and_attached_to_the_search_run(search):
    out = search["work"] / "out" / "e2e"
    report = (out / "report.md").read_text()
    assert "e2e" in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "test_loss_by_depth.png" in pngs and "expected_best.png" in pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = search["client"]
    (top,) = _role(search["runs"], "search")
    attached = {a.path for a in client.list_artifacts(top.info.run_id, "report")}
    assert {"report/report.md", "report/test_loss_by_depth.png"} <= attached
    assert top.data.tags["stacktune.verdict"] == search["comparison"]["conclusion"]


def test_report_rebuilds_from_mlflow_alone(search, tmp_path):
    proc = run_cli("report", "e2e", "--out", str(tmp_path), "--tracking-uri", search["uri"], cwd=search["work"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == str(tmp_path / "e2e" / "report.md")  # a path a line without --json
    again = run_cli(
        "report", "e2e", "--out", str(tmp_path), "--tracking-uri", search["uri"], "--json", cwd=search["work"]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["files"] == proc.stdout.splitlines()
    rebuilt = (tmp_path / "e2e" / "report.md").read_text()
    assert rebuilt == (search["work"] / "out" / "e2e" / "report.md").read_text()
