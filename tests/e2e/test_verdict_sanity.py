"""The verdict's sanity checks on real searches: a price series that drifted out of its training range is
flagged and pointed to `transform`, and differencing it removes the flag; naive baselines and warnings reach
comparison.json, the report and the search run's tags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import run_cli
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def _prices(path, rows: int = 1200) -> None:
    """Daily closes of a stock that trends up: a geometric random walk with drift, as a CSV."""
    rng = np.random.default_rng(3)
    close = 20.0 * np.exp(np.cumsum(rng.normal(0.0015, 0.01, rows)))
    lines = ["close"] + [f"{c:.4f}" for c in close]
    path.write_text("\n".join(lines) + "\n")


def _search(tmp_path, name: str, dataset: dict, ray: dict, uri: str) -> tuple[dict, MlflowClient]:
    spec = {
        "name": name,
        "dataset": {"csv": "prices.csv", "target": "close", "window": 10, **dataset},
        "depths": [1, 2],
        "trials_per_depth": 2,
        "space": {"units": [8, 16], "lr": [1e-3, 1e-2]},
        "train": {"epochs": 2, "batch_size": 64},
        "evaluation": {"seeds": 2},
        "seed": 0,
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    proc = run_cli("search", f"{name}.yaml", "--out", "out", "--tracking-uri", uri, "--json", cwd=tmp_path, env=ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), MlflowClient(tracking_uri=uri)


def test_a_price_series_is_flagged_as_shifted_and_pointed_to_transform(tmp_path, shared_ray, mlflow_store):
    _prices(tmp_path / "prices.csv")
    comparison, client = _search(tmp_path, "prices", {}, shared_ray, mlflow_store(tmp_path))

    codes = {w["code"] for w in comparison["warnings"]}
    assert "distribution_shift" in codes
    shift = next(w for w in comparison["warnings"] if w["code"] == "distribution_shift")
    assert "dataset.transform: log_diff" in shift["sentence"]  # a price series is positive
    # Two seeds cannot decide two depths: the verdict says so rather than naming a winner.
    assert comparison["verdict"]["winner"] is None and comparison["verdict"]["undecided"]
    assert "too_few_seeds" in codes
    assert "cannot decide" in comparison["conclusion"]

    # The naive forecast is scored on the same test split, and each depth gets a skill against it.
    kinds = {b["kind"] for b in comparison["baselines"]}
    assert kinds == {"persistence"}
    assert all(isinstance(e["skill"], float) for e in comparison["depths"])

    report = (tmp_path / "out" / "prices" / "report.md").read_text()
    assert "## Against a naive forecast" in report and "## Warnings" in report
    assert "distribution_shift" in report and "Undecided" in report

    (search_run,) = client.search_runs(
        [client.get_experiment_by_name("prices").experiment_id], filter_string="tags.`stacktune.role` = 'search'"
    )
    assert "distribution_shift" in search_run.data.tags["stacktune.warnings"].split(",")
    assert search_run.data.tags["stacktune.naive_baseline"].startswith("persistence ")
    assert search_run.data.tags["stacktune.winner"] == "undecided"
    assert search_run.data.metrics["naive_persistence_test_loss"] == pytest.approx(comparison["baselines"][0]["loss"])


def test_differencing_the_prices_removes_the_range_shift(tmp_path, shared_ray, mlflow_store):
    _prices(tmp_path / "prices.csv")
    comparison, _ = _search(tmp_path, "returns", {"transform": "log_diff"}, shared_ray, mlflow_store(tmp_path))
    shifts = [w for w in comparison["warnings"] if w["code"] == "distribution_shift"]
    assert not any("range" in w["sentence"] for w in shifts), shifts


def test_seeds_auto_evaluates_in_rounds_and_stops_when_decided_or_at_the_cap(tmp_path, shared_ray, mlflow_store):
    from conftest import write_spec

    spec = write_spec(
        tmp_path,
        name="rounds",
        depths=[1, 2],
        trials_per_depth=2,
        train={"epochs": 2, "batch_size": 32},
        evaluation={"seeds": "auto", "max_seeds": 9},
    )
    uri = mlflow_store(tmp_path)
    proc = run_cli("search", spec, "--out", "out", "--tracking-uri", uri, cwd=tmp_path, env=shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads((tmp_path / "out" / "rounds" / "comparison.json").read_text())
    evaluation = comparison["evaluation"]
    assert evaluation["sequential"] and evaluation["planned_rounds"] == [6, 9]
    rounds = evaluation["rounds"]
    assert rounds == evaluation["planned_rounds"][: len(rounds)]
    used = rounds[-1]
    decided = comparison["verdict"]["winner"] is not None
    assert decided or used == 9  # it stops once decided, else at max_seeds
    assert evaluation["seeds"] == sorted(set(evaluation["seeds"])) and len(evaluation["seeds"]) == used
    for entry in comparison["depths"]:
        assert entry["seeds"] == evaluation["seeds"]
    # Each round's p-values are adjusted for every planned look.
    (pair,) = comparison["verdict"]["pairs"]
    assert pair["p_adjusted"] >= min(1.0, len(evaluation["planned_rounds"]) * pair["p_value"]) - 1e-12
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rounds")
    evals = client.search_runs([experiment.experiment_id], filter_string="tags.`stacktune.role` = 'eval'")
    assert len(evals) == 2 * 2 * used  # two depths, tuned and fixed, every seed of every round run
    for number in range(1, len(rounds) + 1):
        assert f"evaluating on the test split, round {number}:" in proc.stderr
    assert "not implemented" not in proc.stderr  # Ray Tune saves the rounds' searcher with its experiment
    # Off a terminal, one line per retraining says how far the round is.
    first = 2 * 2 * rounds[0]  # the first round's retrainings: two depths, tuned and fixed, each seed
    assert f"  retraining 1/{first}: depth " in proc.stderr and f"  retraining {first}/{first}: depth " in proc.stderr


def test_a_seconds_budget_gives_each_depth_the_same_training_time(tmp_path, shared_ray, mlflow_store):
    from conftest import write_spec

    spec = write_spec(
        tmp_path,
        name="seconds",
        depths=[1, 3],
        trials_per_depth=500,  # a cap far above what the time allows: the seconds end each depth
        budget={"kind": "seconds", "per_depth": 3},
        train={"epochs": 30, "batch_size": 32, "patience": None},  # trials long enough to need a few of them
    )
    uri = mlflow_store(tmp_path)
    proc = run_cli("search", spec, "--out", "out", "--tracking-uri", uri, "--json", cwd=tmp_path, env=shared_ray)
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads(proc.stdout)
    assert comparison["budget"] == {"kind": "seconds", "per_depth": 3.0}
    for entry in comparison["depths"]:
        trials = sum(entry["trials"].values())
        assert 1 <= trials < 500
        # Each depth trained at least its time (the last trial may run past it, by the reported overshoot).
        assert entry["train_seconds"] >= 3.0
        assert entry["overshoot_seconds"] == pytest.approx(entry["train_seconds"] - 3.0, abs=1e-3)
        assert len(entry["expected_best"]) == trials == len(entry["expected_best_seconds"])
    report = (tmp_path / "out" / "seconds" / "report.md").read_text()
    assert "Every depth got 3 s of training" in report
