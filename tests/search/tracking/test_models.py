"""Best trials as MLflow Models, on a real MLflow store: the pyfunc takes the data's own units and answers in them,
with the loss stacktune computes on the scaled data; the registry gets the verdict and the config."""

from __future__ import annotations

import os

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
import torch
from mlflow.entities import LoggedModelStatus

from stacktune.datasets import DatasetSpec
from stacktune.models.lstm import LSTMConfig, StackedLSTM, save_model
from stacktune.models.train import evaluate
from stacktune.search.errors import ConfigError, StacktuneError
from stacktune.search.spec.loading import load_data
from stacktune.search.tracking import models, store, tags
from stacktune.search.tracking.models import check_model_name, log_best_model, register, unscaled_inputs


@pytest.fixture
def client(tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)  # the store's default artifact root lands in the test's folder
    uri = mlflow_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where mlflow.pyfunc.load_model looks models up
    return store.client(uri)


def _logged(client, tmp_path, data, *, units: list[int]) -> tuple[StackedLSTM, str, str]:
    """A model of `units` for `data`, saved and logged as a trial's best; returns it, its model id and its run."""
    torch.manual_seed(0)
    config = LSTMConfig(input_size=data.input_size, units=units, output_size=data.output_size, task=data.task)
    model = StackedLSTM(config)
    weights = tmp_path / "model.pt"
    save_model(model, weights)
    experiment = client.create_experiment("models-test")
    run = client.create_run(experiment, run_name="d2-t03")
    model_id = log_best_model(
        client, weights=weights, data=data, run_id=run.info.run_id, experiment_id=experiment, search="s", depth=2,
        trial="d2-t03",
    )  # fmt: skip
    return model.eval(), model_id, run.info.run_id


def test_a_classifier_of_sequences_of_different_lengths_answers_probabilities_with_stacktunes_loss(client, tmp_path):
    data = load_data(DatasetSpec(name="japanese_vowels"), base_dir=None)
    assert data.test.lengths is not None and data.meta["x_mean"] is not None  # padded and scaled: both undone
    model, model_id, run_id = _logged(client, tmp_path, data, units=[8, 8])

    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_id}")
    probabilities = pyfunc.predict({"x": unscaled_inputs(data, data.test), "lengths": data.test.lengths})
    assert probabilities.shape == (len(data.test), 9)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(data.test)), data.test.y]))
    assert cross_entropy == pytest.approx(evaluate(model, data.test, task="classification")["loss"], rel=1e-4)

    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run_id and logged.tags[tags.MODEL_TRIAL] == "d2-t03"
    assert logged.status == LoggedModelStatus.READY
    assert pyfunc.metadata.metadata["labels"] == data.meta["labels"]
    # The signature names both inputs, with the channels fixed and the time steps free.
    inputs = pyfunc.metadata.signature.inputs.to_dict()
    assert [i["name"] for i in inputs] == ["x", "lengths"]
    assert list(inputs[0]["tensor-spec"]["shape"]) == [-1, -1, data.input_size]


def test_a_forecaster_answers_in_the_targets_units_and_refuses_the_wrong_channels(client, tmp_path):
    data = load_data(DatasetSpec(name="sunspots", window=24), base_dir=None)
    model, model_id, _ = _logged(client, tmp_path, data, units=[16])

    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_id}")
    raw = unscaled_inputs(data, data.test)
    # Sunspot counts, not standardised values: the pyfunc scaled them itself.
    assert raw.min() >= 0 and raw.max() > 50
    predictions = pyfunc.predict(raw)
    y_mean, y_std = np.asarray(data.meta["y_mean"]), np.asarray(data.meta["y_std"])
    mse = np.mean(((predictions - y_mean) / y_std - data.test.y) ** 2)
    assert mse == pytest.approx(evaluate(model, data.test, task="regression")["loss"], rel=1e-4)
    with pytest.raises(Exception, match="shape"):
        pyfunc.predict(np.zeros((2, 24, 3), dtype=np.float32))


def _comparison(model_id: str | None, run_id: str) -> dict:
    entry = {
        "depth": 2,
        "best_val_loss": 0.25,
        "best_config": {"model": {"units": [16, 16]}, "train": {"lr": 0.01}},
        "best_trial": {"name": "d2-t03", "mlflow_run_id": run_id},
    }
    if model_id:
        entry["model"] = {"model_id": model_id, "uri": f"models:/{model_id}", "test_loss": 0.3}
    return {"search": "s", "best_depth": 2, "conclusion": "Tuned separately, depth 2 wins.", "depths": [entry]}


def test_registering_adds_a_version_once_points_the_champion_at_the_latest_and_refuses_a_search_without_models(
    client, tmp_path
):
    data = load_data(DatasetSpec(name="sine", window=12), base_dir=None)
    _, model_id, run_id = _logged(client, tmp_path, data, units=[8])

    first = register(client, _comparison(model_id, run_id), "lstm-forecaster")
    again = register(client, _comparison(model_id, run_id), "lstm-forecaster")
    assert first == again
    assert first == {
        "name": "lstm-forecaster",
        "version": 1,
        "model_uri": "models:/lstm-forecaster/1",
        "alias_uri": "models:/lstm-forecaster@champion",
    }
    assert [str(v.version) for v in client.search_model_versions("name = 'lstm-forecaster'")] == ["1"]
    assert str(client.get_model_version_by_alias("lstm-forecaster", "champion").version) == "1"

    version = client.get_model_version("lstm-forecaster", "1")
    assert version.tags[tags.VERDICT] == "Tuned separately, depth 2 wins."
    assert version.tags[tags.DEPTH] == "2" and '"units": [16, 16]' in version.tags[tags.MODEL_CONFIG]
    assert "depth 2 wins" in version.description and version.run_id == run_id

    # A later search's best is a new version and the champion moves to it; under another name it is that name's 1.
    later_run = client.create_run(client.get_experiment_by_name("models-test").experiment_id, run_name="d2-t01")
    later = log_best_model(
        client, weights=tmp_path / "model.pt", data=data, run_id=later_run.info.run_id,
        experiment_id=later_run.info.experiment_id, search="s2", depth=2, trial="d2-t01",
    )  # fmt: skip
    assert register(client, _comparison(later, later_run.info.run_id), "lstm-forecaster")["version"] == 2
    assert str(client.get_model_version_by_alias("lstm-forecaster", "champion").version) == "2"
    assert register(client, _comparison(later, later_run.info.run_id), "lstm-forecaster-b")["version"] == 1
    assert len(client.search_model_versions("name = 'lstm-forecaster'")) == 2
    loaded = mlflow.pyfunc.load_model("models:/lstm-forecaster@champion")
    assert loaded.predict(unscaled_inputs(data, data.test)).shape == (len(data.test), 1)

    with pytest.raises(StacktuneError, match="no logged model to register"):
        register(client, _comparison(None, run_id), "lstm-forecaster")


@pytest.mark.parametrize("name", ["", "  ", "team/lstm", "lstm:v2"])
def test_a_name_the_registry_would_refuse_is_refused_in_one_line_up_front(name):
    with pytest.raises(ConfigError, match="--register") as refused:
        check_model_name(name)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("users", ["unset", "variable", "code"])
def test_logging_uses_the_searchs_store_and_gives_the_users_tracking_uri_back(monkeypatch, users):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if users == "variable":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///theirs.db")
    elif users == "code":
        mlflow.set_tracking_uri("sqlite:///theirs.db")
    try:
        with models._tracking("sqlite:///search.db"):
            assert mlflow.get_tracking_uri() == "sqlite:///search.db"
        assert mlflow.is_tracking_uri_set() == (users != "unset")
        # A subprocess sees the user's store, or none.
        assert os.environ.get("MLFLOW_TRACKING_URI") == (None if users == "unset" else "sqlite:///theirs.db")
        if users == "variable":  # still read from the variable, which the user may change
            monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///later.db")
            assert mlflow.get_tracking_uri() == "sqlite:///later.db"
        elif users == "code":
            assert mlflow.get_tracking_uri() == "sqlite:///theirs.db"
    finally:
        mlflow.set_tracking_uri(None)
