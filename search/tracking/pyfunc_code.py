"""The pyfunc of a stacktune model, and what MLflow runs to rebuild it ("models from code": this file is copied
into the model and run at load time, so nothing is unpickled). It imports only MLflow, NumPy and PyTorch, and the
copy of the network's code that the model carries (models.CODE_MODULE), so the model loads without stacktune. See
models.py for what it takes and returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import numpy as np

WEIGHTS = "weights"  # models.WEIGHTS and models.SCALING: this file runs on its own when the model is loaded
SCALING = "scaling"


class StackedLSTMPyfunc(mlflow.pyfunc.PythonModel):
    """The pyfunc around a saved StackedLSTM and the scaling the search trained it with."""

    def load_context(self, context) -> None:
        from stacktune_lstm import load_model  # models.CODE_MODULE, on sys.path from the model's code_paths

        self.model = load_model(context.artifacts[WEIGHTS])
        scaling = json.loads(Path(context.artifacts[SCALING]).read_text())
        self.task = scaling["task"]
        self.x_mean, self.x_std = _vector(scaling.get("x_mean")), _vector(scaling.get("x_std"))
        self.y_mean, self.y_std = _vector(scaling.get("y_mean")), _vector(scaling.get("y_std"))

    # np.ndarray is a hint MLflow leaves the checking of to the signature, which knows the shapes (a dict of x and
    # lengths, for sequences of different lengths, passes the same way).
    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        x, lengths = _inputs(model_input)
        if x.ndim != 3 or x.shape[2] != self.model.config.input_size:
            raise ValueError(
                f"expected x of shape (samples, time, {self.model.config.input_size}), got {tuple(x.shape)}"
            )
        if self.x_mean is not None:
            x = (x - self.x_mean) / self.x_std
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                None if lengths is None else torch.as_tensor(lengths, dtype=torch.int64),
            ).numpy()
        if self.task == "classification":
            out = np.exp(out - out.max(axis=1, keepdims=True))
            return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
        if self.y_mean is not None:
            out = out * self.y_std + self.y_mean
        return out.astype(np.float32)


def _vector(values) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


def _inputs(model_input) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(model_input, dict):
        lengths = model_input.get("lengths")
        return np.asarray(model_input["x"], dtype=np.float32), None if lengths is None else np.asarray(lengths)
    return np.asarray(model_input, dtype=np.float32), None


mlflow.models.set_model(StackedLSTMPyfunc())
