"""Held-out check of the whole evaluation on a series no other test uses: replicate searches and rolling origins
together, read back from comparison.json, the report and MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import run_cli
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def _demand(path, rows: int = 420) -> None:
    """Weekly demand of a product whose sales grow: a trend, a yearly season and AR(1) noise, as a CSV."""
    rng = np.random.default_rng(2026)
    t = np.arange(rows)
    noise = np.zeros(rows)
    for i in range(1, rows):
        noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 4.0)
    demand = 100 + 0.4 * t + 15 * np.sin(2 * np.pi * t / 52) + noise
    path.write_text("\n".join(["demand"] + [f"{v:.3f}" for v in demand]) + "\n")


def test_replicates_and_rolling_origins_finish_and_record_their_counts_and_agreement(
    tmp_path, shared_ray, mlflow_store
):
    _demand(tmp_path / "demand.csv")
    spec = {
        "name": "demand",
        "dataset": {"csv": "demand.csv", "target": "demand", "window": 12, "season": 52, "test_fraction": 0.2},
        "depths": [1, 2],
        "trials_per_depth": 2,
        "replicates": 2,
        "space": {"units": [8, 16], "lr": [1e-3, 1e-2]},
        "train": {"epochs": 2, "batch_size": 64},
        "evaluation": {"seeds": 2, "origins": 3},
        "seed": 0,
    }
    (tmp_path / "demand.yaml").write_text(yaml.safe_dump(spec))
    uri = mlflow_store(tmp_path)
    proc = run_cli(
        "search", "demand.yaml", "--out", "out", "--tracking-uri", uri, "--json", cwd=tmp_path, env=shared_ray
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    comparison = json.loads(proc.stdout)

    evaluation = comparison["evaluation"]
    assert evaluation["replicates"] == 2 and evaluation["origins"] == 3
    # Each pair of depths has its call's agreement over the searches and over the origins.
    pairs = {(p["a"], p["b"]) for p in comparison["verdict"]["pairs"]}
    assert {(a["a"], a["b"]) for a in comparison["agreement"]} == pairs
    assert {(a["a"], a["b"]) for a in comparison["origin_agreement"]} == pairs
    assert all(a["of"] == 2 and 0 <= a["agree"] <= 2 for a in comparison["agreement"])
    assert all(a["of"] == 3 and 0 <= a["agree"] <= 3 for a in comparison["origin_agreement"])

    # The origins cut the held-out tail into consecutive blocks; each has its windows, naive baseline and depths.
    origins = comparison["origins"]
    assert [o["number"] for o in origins] == [1, 2, 3] and all(o["kind"] == "rolling" for o in origins)
    assert all(a["test_rows"][1] == b["test_rows"][0] for a, b in zip(origins[:-1], origins[1:], strict=True))
    assert origins[0]["segments"]["val"][1] == origins[0]["cutoff"]
    assert [o["segments"]["train"][1] for o in origins] == sorted(o["segments"]["train"][1] for o in origins)
    for origin in origins:
        assert origin["naive"]["kind"] in ("persistence", "seasonal_naive")
        assert [d["depth"] for d in origin["depths"]] == [1, 2]
        assert all(isinstance(d["tuned"], float) and isinstance(d["fixed"], float) for d in origin["depths"])
    windows = sum(o["sizes"]["test"] for o in origins)
    assert all(b["samples"] == windows and len(b["origin_losses"]) == 3 for b in comparison["baselines"])
    # Each run's test loss is its loss over every origin's windows: a depth's mean is the origins' weighted mean.
    for entry in comparison["depths"]:
        at = [next(d["tuned"] for d in o["depths"] if d["depth"] == entry["depth"]) for o in origins]
        weighted = sum(m * o["sizes"]["test"] for m, o in zip(at, origins, strict=True)) / windows
        assert np.mean(entry["test_losses"]) == pytest.approx(weighted, rel=1e-9)
    # A series that grows leaves the training range at every origin: the shift is warned of once per origin.
    shifted = [w for w in comparison["warnings"] if w["code"] == "distribution_shift"]
    assert {w["figures"]["origin"] for w in shifted} <= {1, 2, 3} and shifted
    assert all(w["sentence"].startswith(f"At origin {w['figures']['origin']} of 3, ") for w in shifted)

    report = (tmp_path / "out" / "demand" / "report.md").read_text()
    assert "## Data origins" in report and "## Replicate searches" in report
    assert "- Accounted for: the data split. Every run was repeated at 3 rolling origins" in report

    # MLflow: every retraining is a run tagged with its origin, all ended, none RUNNING.
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("demand").experiment_id
    evals = client.search_runs([experiment], filter_string="tags.`stacktune.role` = 'eval'", max_results=1000)
    # two depths x (two searches' bests + the fixed setting) x two seeds x three origins
    assert len(evals) == 2 * 3 * 2 * 3
    assert sorted({r.data.tags["stacktune.origin"] for r in evals}) == ["1", "2", "3"]
    assert all(r.info.run_name.endswith(f"-o{r.data.tags['stacktune.origin']}") for r in evals)
    every = client.search_runs([experiment], max_results=1000)
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]
