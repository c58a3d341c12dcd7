"""`stacktune train` and `stacktune datasets` as a user runs them: exit codes, JSON, MLflow (and the bf16 check
that `search` shares with `train`)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import yaml
from conftest import EXAMPLES, kill_group, start_cli
from mlflow.tracking import MlflowClient

from stacktune.datasets import list_datasets
from stacktune.search.interfaces.train import run_train

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
def test_train_runs_on_every_builtin_dataset(tmp_path, name, shared_uri):
    # In this process, through the function `stacktune train` calls: the command itself is run by the tests
    # below, and a fresh interpreter per data set would cost seconds of imports each.
    result = json.loads(json.dumps(run_train(_config(tmp_path, name), tracking_uri=shared_uri)))
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


# STACKTUNE_CPU_BF16=0 makes any CPU fp32-only: the refusal a CPU without bfloat16 support gets.
NO_CPU_BF16 = {"STACKTUNE_CPU_BF16": "0"}
BF16_REFUSED = "train.precision bf16: this CPU lacks bfloat16 support"


def _one_line_refusal(proc) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "primitive descriptor" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and BF16_REFUSED in errors[0] and "use `precision: fp32`" in errors[0], proc.stderr
    assert proc.stdout == ""


def test_train_refuses_bf16_on_a_cpu_without_bfloat16_before_training(cli, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = cli("train", _config(tmp_path, "sine", precision="bf16"), "--json", "--tracking-uri", uri, env=NO_CPU_BF16)
    _one_line_refusal(proc)
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was opened


@pytest.mark.slow
def test_search_refuses_bf16_trials_on_a_cpu_without_bfloat16_before_any_trial(cli, tmp_path):
    spec = {
        "name": "bf16-refused",
        "dataset": {"name": "sine", **SMALL["sine"]},
        "depths": [1],
        "trials_per_depth": 1,
        "train": {"epochs": 1, "precision": "bf16"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    proc = cli(
        "search", str(path), "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", env=NO_CPU_BF16
    )
    _one_line_refusal(proc)
    assert not (out / "bf16-refused").exists()


def test_train_with_bf16_runs_where_the_cpu_supports_it(cli, tmp_path, shared_uri):
    from stacktune.models import bf16_supported

    if not bf16_supported("cpu"):
        pytest.skip("this CPU lacks bfloat16 support: the refusal tests above cover it")
    proc = cli("train", _config(tmp_path, "sine", precision="bf16"), "--json", "--tracking-uri", shared_uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["state"] == "completed"


@pytest.mark.parametrize(
    "sig, status, line",
    [(signal.SIGTERM, 143, "error: terminated (SIGTERM)"), (signal.SIGINT, 130, "error: interrupted (SIGINT)")],
    ids=["sigterm", "sigint"],
)
def test_a_stopped_training_ends_its_run_killed_with_one_error_line(tmp_path, shared_uri, sig, status, line):
    config = _config(tmp_path, "sine", epochs=100_000, patience=None)
    proc = start_cli("train", config, "--tracking-uri", shared_uri, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while "epoch 1 " not in (tmp_path / "stderr").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()[-3000:]
            time.sleep(0.2)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        kill_group(proc)
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == status, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == line and "Traceback" not in stderr
    client = MlflowClient(tracking_uri=shared_uri)
    runs = client.search_runs([client.get_experiment_by_name("stacktune-train").experiment_id])
    mine = [r for r in runs if r.data.tags.get("mlflow.source.name") == config]
    assert [r.info.status for r in mine] == ["KILLED"]
