"""comparison.json as types: Comparison and DepthEntry read the file back exactly, unknown keys included."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stacktune.search.analysis.comparison import Comparison, DepthEntry

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "sunspots-depths" / "comparison.json"


@pytest.fixture
def example() -> dict:
    with open(EXAMPLE) as f:
        return json.load(f)


def test_the_shipped_comparison_round_trips_exactly(example):
    again = Comparison.from_dict(copy.deepcopy(example)).to_dict()

    assert again == example
    assert list(again) == list(example)
    for written, read in zip(again["depths"], example["depths"], strict=True):
        assert list(written) == list(read)
    # Plain JSON types only: it writes back to the same text.
    assert json.dumps(again, indent=2) == json.dumps(example, indent=2)


def test_the_shipped_comparison_reads_as_types(example):
    comparison = Comparison.from_dict(example)

    assert comparison.search == example["search"]
    assert [e.depth for e in comparison.depths] == [d["depth"] for d in example["depths"]]
    assert all(isinstance(e, DepthEntry) for e in comparison.depths)
    assert comparison.best_depth == example["best_depth"]
    assert comparison.verdict == example["verdict"]
    assert comparison.extra == {}
    for entry, data in zip(comparison.depths, example["depths"], strict=True):
        assert entry.best_val_loss == data["best_val_loss"]
        assert entry.test_losses == data["test_losses"]
        assert entry.extra == {}


def test_unknown_keys_survive_a_round_trip(example):
    data = copy.deepcopy(example)
    data["written_by"] = {"version": "9.9", "host": "somewhere"}
    data["depths"][0]["gpu_hours"] = 1.25
    data["depths"][-1]["notes"] = ["a", "b"]

    comparison = Comparison.from_dict(data)
    assert comparison.extra == {"written_by": {"version": "9.9", "host": "somewhere"}}
    assert comparison.depths[0].extra == {"gpu_hours": 1.25}
    assert comparison.depths[-1].extra == {"notes": ["a", "b"]}

    again = comparison.to_dict()
    assert again == data
    assert again["written_by"] == {"version": "9.9", "host": "somewhere"}
    assert again["depths"][0]["gpu_hours"] == 1.25
    assert again["depths"][-1]["notes"] == ["a", "b"]
    assert "extra" not in again and all("extra" not in d for d in again["depths"])


def test_optional_keys_without_a_value_are_left_out():
    entry = DepthEntry(depth=3)
    written = entry.to_dict()
    for key in (
        "val_curve",
        "test_loss_mean",
        "test_loss_ci95",
        "test_losses",
        "seeds",
        "evaluated_rank",
        "evaluated_config",
        "test_accuracy_mean",
        "fixed",
    ):
        assert key not in written
    # What the search always writes is there, even unset.
    assert written["depth"] == 3
    assert written["trials"] == {} and written["expected_best"] == [] and written["epochs"] == 0
    assert "best_val_loss" in written and written["best_val_loss"] is None

    comparison = Comparison(
        search="s",
        experiment_id="1",
        mlflow_run_id="abc",
        dataset={"name": "sine"},
        task="regression",
        trials_per_depth=4,
        depths=[DepthEntry(depth=1), DepthEntry(depth=2)],
    )
    top = comparison.to_dict()
    for key in ("best_depth", "verdict", "fixed_verdict", "conclusion_changed", "conclusion"):
        assert key not in top
    assert [d["depth"] for d in top["depths"]] == [1, 2]
    assert Comparison.from_dict(top).to_dict() == top

    entry.test_loss_mean, entry.seeds = 0.5, [1000, 1001]
    written = entry.to_dict()
    assert written["test_loss_mean"] == 0.5 and written["seeds"] == [1000, 1001]


def test_a_falsy_optional_value_is_kept():
    comparison = Comparison(
        search="s",
        experiment_id="1",
        mlflow_run_id="abc",
        dataset={},
        task="regression",
        trials_per_depth=1,
        depths=[DepthEntry(depth=1, evaluated_rank=0, test_losses=[])],
        conclusion_changed=False,
    )
    top = comparison.to_dict()
    assert top["conclusion_changed"] is False
    assert top["depths"][0]["evaluated_rank"] == 0
    assert top["depths"][0]["test_losses"] == []


def test_entry_finds_a_depth(example):
    comparison = Comparison.from_dict(example)
    for data in example["depths"]:
        entry = comparison.entry(data["depth"])
        assert entry.depth == data["depth"]
        assert entry.mlflow_run_id == data["mlflow_run_id"]
    assert comparison.entry(example["best_depth"]).best_val_loss == min(d["best_val_loss"] for d in example["depths"])


def test_the_importance_method_round_trips():
    entry = DepthEntry(depth=2, importance={"lr": 0.8, "units_0": 0.2}, importance_method="PED-ANOVA")
    written = entry.to_dict()
    assert written["importance_method"] == "PED-ANOVA"
    assert list(written).index("importance_method") == list(written).index("importance") + 1

    again = DepthEntry.from_dict(json.loads(json.dumps(written)))
    assert again.importance_method == "PED-ANOVA" and again.importance == {"lr": 0.8, "units_0": 0.2}
    assert again.extra == {} and again.to_dict() == written


def test_a_file_written_before_the_importance_method_was_recorded_still_loads(example):
    # The shipped file, as versions before the method (and the logged models) were recorded wrote it.
    for depth in example["depths"]:
        depth.pop("importance_method", None)
        depth.pop("model", None)
    assert all("importance" in d for d in example["depths"])

    comparison = Comparison.from_dict(copy.deepcopy(example))
    for entry, data in zip(comparison.depths, example["depths"], strict=True):
        assert entry.importance == data["importance"]
        assert entry.importance_method is None and entry.extra == {}
    # Written back, it still has no method: none is made up for it.
    assert all("importance_method" not in d for d in comparison.to_dict()["depths"])
    assert "importance_method" not in DepthEntry(depth=1).to_dict()
