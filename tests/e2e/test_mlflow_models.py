"""A search's best models as real MLflow Models: logged per depth and linked to their trial runs, registered with
`--register`, and loaded by a fresh process with `mlflow.pyfunc.load_model`, which predicts the test split with the
loss the report states."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import EXAMPLES, _cli_env

from stacktune.search.tracking import store, tags

# A fresh process, as a user serving the model: only MLflow, the data and the URIs the search printed.
LOAD = """
import json, sys
import mlflow.pyfunc
import numpy as np
from stacktune.search import load_data, load_spec
from stacktune.search.tracking.models import unscaled_inputs

spec = load_spec(sys.argv[1])
data = load_data(spec.dataset, base_dir=None)
y_mean, y_std = np.asarray(data.meta["y_mean"]), np.asarray(data.meta["y_std"])
losses = {}
for uri in sys.argv[2:]:
    predictions = mlflow.pyfunc.load_model(uri).predict(unscaled_inputs(data, data.test))
    # The report's losses are on the standardised targets: the same scale here.
    losses[uri] = float(np.mean(((predictions - y_mean) / y_std - data.test.y) ** 2))
print(json.dumps(losses))
"""


@pytest.mark.slow
def test_search_logs_each_depths_best_as_a_model_registers_the_best_and_a_fresh_process_loads_it(cli, tmp_path):
    args = ("--depths", "1,2", "--trials-per-depth", "2", "--epochs", "2", "--seeds", "2")
    done = cli("-q", "search", str(EXAMPLES / "demo.yaml"), *args, "--register", "sunspots-lstm")
    assert done.returncode == 0, done.stderr[-4000:]
    # -q: no progress and no messages of stacktune's own (nor MLflow's INFO lines), only the answer on stdout.
    for chatter in ("searching", "depth 1:", "evaluating", "retraining", "registered the best model", "INFO"):
        assert chatter not in done.stderr
    assert "(registered as models:/sunspots-lstm/1)" in done.stdout
    comparison = json.loads((tmp_path / "stacktune-runs" / "demo-sunspots" / "comparison.json").read_text())
    assert comparison["registered"] == {"name": "sunspots-lstm", "version": 1, "model_uri": "models:/sunspots-lstm/1"}
    models = {d["depth"]: d["model"] for d in comparison["depths"]}
    assert set(models) == {1, 2}
    report = (tmp_path / "stacktune-runs" / "demo-sunspots" / "report.md").read_text()
    for model in models.values():
        assert f"`{model['uri']}` | {model['test_loss']:.4g} |" in report

    # Each model is linked to its depth's best trial run; the overall best is marked.
    client = store.client(f"sqlite:///{tmp_path}/mlflow.db")
    for entry in comparison["depths"]:
        logged = client.get_logged_model(entry["model"]["model_id"])
        assert logged.source_run_id == entry["best_trial"]["mlflow_run_id"]
        assert logged.tags.get(tags.OVERALL_BEST) == ("true" if entry["depth"] == comparison["best_depth"] else None)
    version = client.get_model_version("sunspots-lstm", "1")
    assert version.tags[tags.VERDICT] == comparison["conclusion"]
    assert version.tags[tags.DEPTH] == str(comparison["best_depth"])

    # export --register adds a version of the same model, read back from MLflow alone.
    exported = cli("export", "demo-sunspots", "--register", "sunspots-lstm", "--json")
    assert exported.returncode == 0, exported.stderr[-4000:]
    assert json.loads(exported.stdout)["registered"]["model_uri"] == "models:/sunspots-lstm/2"

    uris = [m["uri"] for m in models.values()] + ["models:/sunspots-lstm/1", "models:/sunspots-lstm/2"]
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD, str(EXAMPLES / "demo.yaml"), *uris],
        cwd=tmp_path,
        env=_cli_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    losses = json.loads(loaded.stdout)
    for model in models.values():
        assert losses[model["uri"]] == pytest.approx(model["test_loss"], rel=1e-5)
    best = models[comparison["best_depth"]]["test_loss"]
    assert losses["models:/sunspots-lstm/1"] == losses["models:/sunspots-lstm/2"] == pytest.approx(best, rel=1e-5)
