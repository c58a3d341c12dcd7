"""comparison.json as types: Comparison and DepthEntry read the file back exactly, unknown keys included."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from stacktune.search.verdict.comparison import (
    BestTrial,
    Budget,
    Comparison,
    DatasetInfo,
    DepthEntry,
    EvaluationInfo,
    FixedResult,
    FixedSetting,
    ModelInfo,
    NaiveBaseline,
    Pair,
    SearchWarning,
    Trend,
    TrialCounts,
    Tuning,
    Verdict,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "sunspots-depths" / "comparison.json"
OLDER = Path(__file__).parents[1] / "data" / "comparison-before-best-set.json"


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


@pytest.mark.parametrize("path", [EXAMPLE, OLDER], ids=["shipped", "before-best-set"])
def test_a_file_reads_and_writes_back_to_the_same_text(path):
    text = path.read_text()
    comparison = Comparison.from_dict(json.loads(text))

    assert json.dumps(comparison.to_dict(), indent=2) + "\n" == text
    assert json.dumps(copy.deepcopy(comparison).to_dict(), indent=2) + "\n" == text


def test_keys_an_older_file_lacks_are_defaults_and_stay_out_of_it():
    older = json.loads(OLDER.read_text())
    assert "best_set" not in older["verdict"] and "p_a_better_ci" not in older["verdict"]["pairs"][0]

    comparison = Comparison.from_dict(copy.deepcopy(older))
    assert comparison.verdict.best_set is None and comparison.verdict.trend is None
    assert comparison.verdict.pairs[0].p_a_better_ci is None and comparison.tuning is None
    assert comparison.depths[0].fixed.test_loss_ci_method is None
    assert comparison.to_dict() == older

    # What is set since it was read is written, after the keys the file had.
    comparison.verdict.best_set = [2]
    comparison.depths[0].fixed.test_loss_ci_method = "t"
    again = comparison.to_dict()
    assert list(again["verdict"])[-1] == "best_set" and again["verdict"]["best_set"] == [2]
    assert list(again["depths"][0]["fixed"])[-1] == "test_loss_ci_method"


def test_a_dict_given_to_a_part_is_read_as_that_part():
    comparison = Comparison(
        search="s",
        experiment_id="1",
        mlflow_run_id="abc",
        dataset={"name": "sine", "window": 8},
        task="classification",
        trials_per_depth=2,
        depths=[DepthEntry(depth=1, trials={"completed": 2, "pruned": 0, "failed": 0})],
    )
    assert isinstance(comparison.dataset, DatasetInfo) and comparison.dataset.window == 8
    assert isinstance(comparison.depths[0].trials, TrialCounts) and comparison.depths[0].trials.total == 2

    # As the statistics and the naive baselines return them, with their own key order kept.
    majority = {"kind": "majority_class", "loss": 0.69, "accuracy": 0.5, "description": "d", "classes": 2}
    comparison.baselines = [majority]
    incomplete = {"winner": None, "tied": [], "undecided": True, "pairs": [], "rule": "", "summary": "x"}
    comparison.verdict = dict(incomplete)
    comparison.depths[0].fixed = {"config": {}, "params": 10, "test_losses": [0.5, None], "test_loss_mean": 0.5}
    assert comparison.baselines[0].accuracy == 0.5 and comparison.baselines[0].extra == {"classes": 2}
    assert comparison.verdict.undecided and not comparison.verdict.names_best
    assert comparison.depths[0].fixed_scores.test_losses == [0.5, None]

    written = comparison.to_dict()
    assert list(written["baselines"][0]) == list(majority) and written["baselines"][0] == majority
    assert written["verdict"] == incomplete  # no best_set or trend made up for it
    assert written["dataset"] == {"name": "sine", "window": 8}
    assert written["depths"][0]["trials"] == {"completed": 2, "pruned": 0, "failed": 0}


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("verdict", [2], "verdict must be an object, got [2]"),
        ("baselines", {"kind": "persistence"}, "baselines must be a list"),
        ("depths", [{"best_val_loss": 0.3}], "depths[0] has no 'depth'"),
        ("warnings", ["too few seeds"], "warnings[0] must be an object, got 'too few seeds'"),
    ],
)
def test_a_part_of_the_wrong_kind_is_refused_naming_its_key(example, key, value, words):
    with pytest.raises(ValueError, match=re.escape(f"comparison.json: {words}")):
        Comparison.from_dict({**example, key: value})
    pairs = {**example["verdict"], "pairs": [1, 2]}
    with pytest.raises(ValueError, match=re.escape("verdict.pairs[0] must be an object, got 1")):
        Comparison.from_dict({**example, "verdict": pairs})
    with pytest.raises(ValueError, match="has no 'search'"):
        Comparison.from_dict({k: v for k, v in example.items() if k != "search"})


def test_the_shipped_comparison_reads_as_types(example):
    comparison = Comparison.from_dict(example)

    assert comparison.search == example["search"]
    assert [e.depth for e in comparison.depths] == [d["depth"] for d in example["depths"]]
    assert all(isinstance(e, DepthEntry) for e in comparison.depths)
    assert comparison.best_depth == example["best_depth"]
    assert isinstance(comparison.verdict, Verdict) and comparison.verdict.to_dict() == example["verdict"]
    assert comparison.verdict.winner == example["verdict"]["winner"] == 2
    assert all(isinstance(p, Pair) for p in comparison.verdict.pairs)
    assert isinstance(comparison.verdict.trend, Trend) and comparison.verdict.trend.direction == "up"
    assert isinstance(comparison.fixed_verdict, Verdict) and isinstance(comparison.tuning, Tuning)
    assert isinstance(comparison.evaluation, EvaluationInfo) and comparison.evaluation.seeds == list(range(1000, 1008))
    assert isinstance(comparison.dataset, DatasetInfo) and comparison.dataset.name == "sunspots"
    assert isinstance(comparison.baseline, FixedSetting) and comparison.baseline.units == 64
    assert isinstance(comparison.budget, Budget) and comparison.budget.kind == "trials"
    assert [b.kind for b in comparison.baselines] == ["persistence", "seasonal_naive"]
    assert all(isinstance(b, NaiveBaseline) for b in comparison.baselines)
    assert all(isinstance(w, SearchWarning) and w.code and w.sentence for w in comparison.warnings)
    assert comparison.best_baseline.kind == "persistence"
    assert comparison.extra == {}
    for entry, data in zip(comparison.depths, example["depths"], strict=True):
        assert entry.best_val_loss == data["best_val_loss"]
        assert entry.test_losses == data["test_losses"]
        assert isinstance(entry.trials, TrialCounts) and entry.trials.completed == data["trials"]["completed"]
        assert isinstance(entry.best_trial, BestTrial) and entry.best_trial.name == data["best_trial"]["name"]
        assert isinstance(entry.model, ModelInfo) and entry.model.uri == data["model"]["uri"]
        assert isinstance(entry.fixed, FixedResult) and entry.fixed.test_losses == data["fixed"]["test_losses"]
        assert entry.extra == {}


def test_unknown_keys_survive_a_round_trip(example):
    data = copy.deepcopy(example)
    data["written_by"] = {"version": "9.9", "host": "somewhere"}
    data["depths"][0]["gpu_hours"] = 1.25
    data["depths"][-1]["notes"] = ["a", "b"]
    data["verdict"]["pairs"][0]["effect_size"] = 0.9
    data["depths"][0]["fixed"]["notes"] = "kept"

    comparison = Comparison.from_dict(data)
    assert comparison.extra == {"written_by": {"version": "9.9", "host": "somewhere"}}
    assert comparison.depths[0].extra == {"gpu_hours": 1.25}
    assert comparison.depths[-1].extra == {"notes": ["a", "b"]}
    assert comparison.verdict.pairs[0].extra == {"effect_size": 0.9}
    assert comparison.depths[0].fixed.extra == {"notes": "kept"}

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
