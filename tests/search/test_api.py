"""The public Python API: what `from stacktune.search import ...` gives, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stacktune.search as api


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_name_resolves(name):
    assert getattr(api, name) is not None


def test_compare_returns_a_verdict_with_the_documented_fields():
    from stacktune.search import compare

    verdict = compare(
        {1: [0.21, 0.22, 0.20, 0.23, 0.19, 0.24], 2: [0.30, 0.29, 0.31, 0.33, 0.28, 0.32]}, confidence=0.95, seed=0
    )
    assert verdict.winner == 1 and verdict.tied == verdict.best_set == [1] and verdict.undecided is False
    assert verdict.trend is None
    (pair,) = verdict.pairs
    assert (pair.a, pair.b, pair.better) == (1, 2, 1)
    assert verdict.summary == "depth 1 wins"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        api.no_such_thing  # noqa: B018


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("stacktune.search", ("ray", "optuna", "mlflow", "torch")),
        # Every new Ray worker imports the module of its trainable: MLflow, Optuna or SciPy there would add about a
        # second to every worker's start, in the search and in each evaluation.
        ("stacktune.search.engine.trainable", ("mlflow", "optuna", "scipy", "pandas")),
    ],
)
def test_importing_imports_no_heavy_dependency(module, heavy):
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
