"""`stacktune train` and `stacktune datasets` as a user runs them: exit codes, JSON, MLflow."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import EXAMPLES
from mlflow.tracking import MlflowClient

from stacktune.datasets import list_datasets

# Few epochs and small data: these check that every set trains, not how well.
SMALL = {
    "sine": {"window": 12, "length": 300},
    "linear": {"window": 2, "length": 200},
    "fibonacci": {"window": 8, "length": 300},
    "mackey_glass": {"window": 16, "length": 400},
    "adding": {"seq_len": 20, "length": 200},
    "sunspots": {"window": 12},
    "co2": {"window": 12},
    "macrodata": {"window": 4},
    "japanese_vowels": {},
    "italy_power_demand": {},
    "basic_motions": {},
}


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory):
    """One MLflow store for the module: creating its tables costs seconds each time."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def _config(tmp_path, name: str, **train) -> str:
    cfg = {
        "dataset": {"name": name, **SMALL[name]},
        "model": {"units": [8, 4]},
        "train": {"lr": 0.01, "epochs": 2, "batch_size": 64, "seed": 3, **train},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_datasets_lists_every_builtin_set(cli):
    proc = cli("datasets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} >= set(SMALL)
    assert all({"name", "task", "length", "channels", "classes", "source"} <= set(r) for r in rows)
    table = cli("datasets")
    assert table.returncode == 0 and "japanese_vowels" in table.stdout


def test_every_builtin_dataset_has_a_small_config_here():
    assert {info.name for info in list_datasets()} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_train_runs_on_every_builtin_dataset(cli, tmp_path, name, shared_uri):
    proc = cli("train", _config(tmp_path, name), "--json", "--tracking-uri", shared_uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert {"val_loss", "test_loss", "params", "seconds"} <= set(result)
    task = next(i.task for i in list_datasets() if i.name == name)
    if task == "classification":
        assert 0.0 <= result["test_accuracy"] <= 1.0


def test_same_config_and_seed_give_the_same_val_loss_and_one_mlflow_run_each(cli, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = _config(tmp_path, "sine", epochs=3)
    first, second = (json.loads(cli("train", config, "--json", "--tracking-uri", uri).stdout) for _ in range(2))
    assert first["val_loss"] == second["val_loss"]
    other = json.loads(cli("train", config, "--json", "--seed", "4", "--tracking-uri", uri).stdout)
    assert other["val_loss"] != first["val_loss"]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("stacktune-train")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.params["units_0"] == "8" and run.data.params["units_1"] == "4"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {"model.pt", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_the_quickstart_example_is_valid(cli, tmp_path, shared_uri):
    cfg = yaml.safe_load((EXAMPLES / "quickstart-train.yaml").read_text())
    cfg["train"]["epochs"] = 1
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = cli("train", str(path), "--json", "--tracking-uri", shared_uri)
    assert proc.returncode == 0, proc.stderr[-2000:]
