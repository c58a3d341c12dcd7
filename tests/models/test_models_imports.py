"""The models package stays importable inside trial workers without the search stack."""

import subprocess
import sys

import stacktune.models


def test_public_api():
    assert sorted(stacktune.models.__all__) == sorted(
        [
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
    )


def test_never_imports_the_search_stack():
    check = "import sys, stacktune.models; print(sorted(m for m in ('ray', 'optuna', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
