"""Stacked LSTM models and the training loop that every search trial runs."""

from .batched import BatchedLSTM
from .lstm import LSTMConfig, StackedLSTM, count_parameters, load_model, save_model
from .precision import bf16_supported, check_precision
from .seeds import batched_pays, fit_seeds
from .train import EpochResult, FitResult, TrainSettings, evaluate, fit

__all__ = [
    "LSTMConfig",
    "StackedLSTM",
    "count_parameters",
    "TrainSettings",
    "EpochResult",
    "FitResult",
    "fit",
    "fit_seeds",
    "batched_pays",
    "BatchedLSTM",
    "evaluate",
    "save_model",
    "load_model",
    "bf16_supported",
    "check_precision",
]
