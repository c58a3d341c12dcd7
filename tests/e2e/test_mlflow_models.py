"""A search's best models as real MLflow Models: logged per depth and linked to their trial runs, registered with
`--register`, and loaded by a fresh process with `mlflow.pyfunc.load_model`, which predicts the test split with the
loss the report states; then loaded and served by `mlflow models serve` in a virtual environment that has only the
model's own requirements, no stacktune."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pytest
from conftest import EXAMPLES, _cli_env, free_port, kill_group

from stacktune.search import load_data, load_spec
from stacktune.search.tracking import store, tags
from stacktune.search.tracking.models import unscaled_inputs

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


# In the virtual environment without stacktune: load the model, predict the inputs saved beside it, print them.
LOAD_WITHOUT_STACKTUNE = """
import importlib.util, json, sys
import mlflow.pyfunc
import numpy as np

assert importlib.util.find_spec("stacktune") is None, "stacktune is importable here"
predictions = mlflow.pyfunc.load_model(sys.argv[1]).predict(np.load(sys.argv[2]))
print(json.dumps(predictions.tolist()))
"""


def _start_bare_venv(folder: Path) -> subprocess.Popen:
    """Starts building a virtual environment of MLflow, PyTorch and NumPy at this environment's versions, as a user
    who serves models has, without stacktune (not even on its path: a venv of its own, not this one's packages)."""
    pins = [f"{package}=={version(package).split('+')[0]}" for package in ("torch", "mlflow", "numpy")]
    line = f"{sys.executable} -m venv {folder} && {folder}/bin/pip install --quiet {' '.join(pins)}"
    with open(folder.parent / "venv.log", "wb") as log:
        return subprocess.Popen(
            ["sh", "-c", line], stdout=log, stderr=subprocess.STDOUT, cwd=folder.parent, start_new_session=True
        )


def _check_without_stacktune(venv: Path, model_uri: str, x: np.ndarray, expected: np.ndarray, env: dict) -> None:
    """The model's own requirements install from the index, then the model loads, predicts `expected` and answers
    /invocations with it, in `venv`."""
    folder = venv.parent
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(folder / "model")))
    requirements = (local / "requirements.txt").read_text()
    assert "stacktune" not in requirements and "torch==" in requirements and "mlflow==" in requirements
    installed = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "-r", local / "requirements.txt"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-4000:]
    np.save(folder / "x.npy", x)
    loaded = subprocess.run(
        [venv / "bin" / "python", "-c", LOAD_WITHOUT_STACKTUNE, model_uri, folder / "x.npy"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    np.testing.assert_allclose(np.asarray(json.loads(loaded.stdout)), expected, rtol=1e-5)

    port = free_port()
    with open(folder / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [venv / "bin" / "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (folder / "serve.log").read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, (folder / "serve.log").read_text()[-4000:]
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": x.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, rtol=1e-5)
    finally:
        kill_group(server)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_search_logs_each_depths_best_as_a_model_registers_the_best_and_a_fresh_process_loads_it(
    cli, tmp_path, shared_ray
):
    bare = tmp_path / "bare" / "venv"
    bare.parent.mkdir()
    building = _start_bare_venv(bare)  # while the search runs
    args = ("--depths", "1,2", "--trials-per-depth", "2", "--epochs", "2", "--seeds", "2")
    done = cli("-q", "search", str(EXAMPLES / "demo.yaml"), *args, "--register", "sunspots-lstm", env=shared_ray)
    assert done.returncode == 0, done.stderr[-4000:]
    # -q: no progress and no messages of stacktune's own (nor MLflow's INFO lines), only the answer on stdout.
    for chatter in ("searching", "depth 1:", "evaluating", "retraining", "registered the best model", "INFO"):
        assert chatter not in done.stderr
    assert "(registered as models:/sunspots-lstm/1)" in done.stdout
    comparison = json.loads((tmp_path / "stacktune-runs" / "demo-sunspots" / "comparison.json").read_text())
    assert comparison["registered"] == {
        "name": "sunspots-lstm",
        "version": 1,
        "model_uri": "models:/sunspots-lstm/1",
        "alias_uri": "models:/sunspots-lstm@champion",
    }
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

    # export --register of the same search, read back from MLflow alone, finds the version already there.
    exported = cli("export", "demo-sunspots", "--register", "sunspots-lstm", "--json")
    assert exported.returncode == 0, exported.stderr[-4000:]
    assert json.loads(exported.stdout)["registered"]["model_uri"] == "models:/sunspots-lstm/1"
    assert len(client.search_model_versions("name = 'sunspots-lstm'")) == 1

    uris = [m["uri"] for m in models.values()] + ["models:/sunspots-lstm/1", "models:/sunspots-lstm@champion"]
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
    champion = losses["models:/sunspots-lstm@champion"]
    assert losses["models:/sunspots-lstm/1"] == champion == pytest.approx(best, rel=1e-5)

    # Where stacktune is not installed: the registered model loads, predicts and is served, from its own code.
    try:
        assert building.wait(timeout=900) == 0, (tmp_path / "bare" / "venv.log").read_text()[-4000:]
    finally:
        kill_group(building)
    data = load_data(load_spec(EXAMPLES / "demo.yaml").dataset, base_dir=None)
    x = unscaled_inputs(data, data.test)[:5]
    uri = "models:/sunspots-lstm/1"
    env = {  # the venv activated, as its user would have it
        "PATH": f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        expected = mlflow.pyfunc.load_model(uri).predict(x)
        _check_without_stacktune(bare, uri, x, expected, env)
