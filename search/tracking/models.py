"""Best trials as MLflow Models: a pyfunc that scales its input as the search did and answers in the data's units,
logged as a LoggedModel linked to the trial's run, and registered in the Model Registry on request.

What the pyfunc takes: x, float32 (samples, time, channels), the model's input windows in the data's own units
(for a series with `transform: diff` or `log_diff`, the windows of the transformed series, i.e. changes). With
sequences of different lengths it takes {"x": x, "lengths": lengths}, x right-padded. What it returns: for
regression (samples, outputs) in the targets' units (step-major for a horizon over 1); for classification each
class's probability (samples, classes), the classes in the order of the model's `labels` metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from . import tags

MODEL_NAME = "model"  # the LoggedModel's name; its artifacts are the MLflow Model folder
# The artifact keys the pyfunc (pyfunc_code.py) reads: the saved StackedLSTM and the scaling as JSON.
WEIGHTS = "weights"
SCALING = "scaling"
# The module the model's own copy of models/lstm.py is imported as (pyfunc_code.py): a name of its own, so that it
# shadows nothing where it is loaded, stacktune included.
CODE_MODULE = "stacktune_lstm"
# The alias of a registered model that points at the version registered last: models:/NAME@champion.
CHAMPION = "champion"


def scaling_of(data) -> dict:
    """What the pyfunc needs of a prepared dataset to take and give the data's own units."""
    meta = data.meta
    return {
        "task": data.task,
        "x_mean": meta.get("x_mean"),
        "x_std": meta.get("x_std"),
        "y_mean": meta.get("y_mean") if data.task == "regression" else None,
        "y_std": meta.get("y_std") if data.task == "regression" else None,
        "columns": meta.get("columns"),
        "targets": meta.get("targets"),
        "labels": meta.get("labels"),
        "transform": meta.get("transform"),
        "window": meta.get("window"),
        "horizon": meta.get("horizon"),
    }


def unscaled_inputs(data, split) -> np.ndarray:
    """A split's inputs back in the data's own units: what the pyfunc takes."""
    x_mean, x_std = data.meta.get("x_mean"), data.meta.get("x_std")
    if x_mean is None:
        return split.x
    x = split.x * np.asarray(x_std, dtype=np.float32) + np.asarray(x_mean, dtype=np.float32)
    if split.lengths is not None:  # padding stays zero, as the dataset pads
        steps = np.arange(x.shape[1])[None, :] < split.lengths[:, None]
        x = np.where(steps[:, :, None], x, 0.0)
    return x.astype(np.float32)


def _signature(data):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    split = data.train
    channels, time = split.x.shape[2], (-1 if split.lengths is not None else split.x.shape[1])
    x = TensorSpec(np.dtype(np.float32), (-1, time, channels), "x" if split.lengths is not None else None)
    inputs = Schema([x, TensorSpec(np.dtype(np.int64), (-1,), "lengths")] if split.lengths is not None else [x])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, data.output_size))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _example(data):
    split = data.train
    x = unscaled_inputs(data, split)[:2]
    return {"x": x, "lengths": split.lengths[:2]} if split.lengths is not None else x


def _requirements() -> list[str]:
    """What the model imports (PyTorch, NumPy, MLflow), pinned to this environment's versions, which an index has:
    stacktune itself is not among them, since the model carries its own code (CODE_MODULE). Named here so that
    MLflow does not start a process to guess them."""
    from importlib.metadata import PackageNotFoundError, version

    wanted = []
    for package in ("torch", "numpy", "mlflow"):
        with contextlib.suppress(PackageNotFoundError):
            wanted.append(f"{package}=={version(package).split('+')[0]}")
    return wanted


def _model_code(folder: Path) -> Path:
    """A copy of the LSTM's code (it needs only PyTorch) under the name the pyfunc imports it by, for code_paths."""
    from stacktune.models import lstm

    code = folder / f"{CODE_MODULE}.py"
    code.write_bytes(Path(lstm.__file__).read_bytes())
    return code


@contextlib.contextmanager
def _tracking(uri: str):
    """MLflow's model logging reads the process-wide tracking URI: this one while it runs, then what it was (unset
    included, so that a notebook's own MLflow calls are not redirected)."""
    import mlflow

    # set_tracking_uri sets MLFLOW_TRACKING_URI too (for subprocesses): a URI unlike the variable's was set in code.
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    current = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    before = current if current != variable else None
    mlflow.set_tracking_uri(uri)
    # Logging loads the model once to check the input example against the signature, and says so at INFO.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets it (and the variable), as MLflow's own code handles
        if variable is not None:
            os.environ["MLFLOW_TRACKING_URI"] = variable
        pyfunc_log.setLevel(level)


def log_best_model(
    client, *, weights: Path, data, run_id: str, experiment_id: str, search: str, depth: int, trial: str
) -> str:
    """Logs the trial's saved model (`weights`, a model.pt) as a pyfunc MLflow Model linked to its run; returns
    the model's id (its URI is models:/ID)."""
    import mlflow.pyfunc
    from mlflow.models import Model

    logged = client.create_logged_model(
        experiment_id=experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        tags={tags.SEARCH: search, tags.DEPTH: str(depth), tags.MODEL_TRIAL: trial},
        model_type="stacked-lstm",
    )
    with tempfile.TemporaryDirectory() as tmp, _tracking(client.tracking_uri):
        scaling = Path(tmp) / "scaling.json"
        scaling.write_text(json.dumps(scaling_of(data), indent=2))
        # Model.log is pyfunc.log_model with the run named: it links the model to its trial run as an output.
        Model.log(
            artifact_path=None,
            flavor=mlflow.pyfunc,
            name=MODEL_NAME,
            # Models from code: the model is rebuilt by running this file, never unpickled; with it goes the code
            # of the network, which MLflow puts on sys.path at load time, so stacktune is not needed there.
            python_model=str(Path(__file__).with_name("pyfunc_code.py")),
            code_paths=[str(_model_code(Path(tmp)))],
            artifacts={WEIGHTS: str(weights), SCALING: str(scaling)},
            signature=_signature(data),
            input_example=_example(data),
            pip_requirements=_requirements(),
            metadata={"search": search, "depth": depth, "task": data.task, "labels": data.meta.get("labels")},
            run_id=run_id,
            model_id=logged.model_id,
        )
    from mlflow.entities import LoggedModelStatus

    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id


def check_model_name(name: str) -> None:
    """Refuses, in one line and before anything runs, a name the Model Registry would refuse at the end."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name  # private: MLflow has no public check of a model name

    from ..errors import ConfigError, first_line

    try:
        _validate_model_name(name)
    except MlflowException as exc:
        raise ConfigError(f"--register {name!r}: {first_line(exc.message)}") from None


def register(client, comparison: dict, name: str) -> dict:
    """Registers the search's overall best model under `name`, with the verdict and the config as its tags and
    description, and points the alias CHAMPION at it. A model that is already a version of `name` is not added
    again: that version is returned (and becomes the champion). Returns {"name", "version", "model_uri",
    "alias_uri"}."""
    from mlflow.exceptions import MlflowException

    from ..errors import StacktuneError

    entry = next((d for d in comparison["depths"] if d["depth"] == comparison.get("best_depth")), None)
    model = (entry or {}).get("model")
    if not model:
        raise StacktuneError(
            f"search {comparison['search']!r} has no logged model to register (no depth finished a trial, "
            "or the search ran before stacktune logged MLflow Models)"
        )
    try:
        client.create_registered_model(
            name, description=f"Stacked LSTMs from stacktune searches (the latest: {comparison['search']})."
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = _version_of(client, name, model) or _add_version(client, name, comparison, entry, model)
    client.set_registered_model_alias(name, CHAMPION, version)
    return {
        "name": name,
        "version": int(version),
        "model_uri": f"models:/{name}/{version}",
        "alias_uri": f"models:/{name}@{CHAMPION}",
    }


def _version_of(client, name: str, model: dict) -> str | None:
    """The version of registered model `name` that already holds the logged model `model`, if one does."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    for version in client.search_model_versions(f"name = '{quoted}'"):
        if version.name == name and (version.model_id == model["model_id"] or version.source == model["uri"]):
            return version.version
    return None


def _add_version(client, name: str, comparison: dict, entry: dict, model: dict) -> str:
    config = json.dumps(entry["best_config"], sort_keys=True)
    conclusion = comparison.get("conclusion") or "no test-split evaluation: lowest validation loss"
    version = client.create_model_version(
        name,
        source=model["uri"],
        run_id=(entry.get("best_trial") or {}).get("mlflow_run_id"),
        tags={
            tags.SEARCH: comparison["search"],
            tags.DEPTH: str(entry["depth"]),
            tags.VERDICT: conclusion[:5000],
            tags.MODEL_CONFIG: config[:5000],
            tags.MODEL_VAL_LOSS: f"{entry['best_val_loss']:.6g}",
        },
        description=(
            f"Depth {entry['depth']} of search {comparison['search']}: the lowest validation loss "
            f"({entry['best_val_loss']:.6g}). {conclusion}\n\nConfig: {config}"
        ),
        model_id=model["model_id"],
    )
    return version.version
