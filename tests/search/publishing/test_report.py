"""report.md and its plots, written from the typed comparison of comparison.json dicts like a finished search leaves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from stacktune.search.publishing import plots
from stacktune.search.publishing.report import PLOT_FILES, write_report
from stacktune.search.verdict.comparison import Comparison
from stacktune.search.verdict.curves import expected_best, expected_best_std
from stacktune.search.verdict.stats import compare, mean_ci
from stacktune.search.verdict.versus_fixed import compare_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA = Path(__file__).parents[1] / "data"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "sunspots-depths"
SEEDS = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]
TRIALS = 16
BASELINE = {"units": 64, "lr": 0.001, "dropout": 0.0, "batch_size": 64}
RULE = (
    "Depth A is better than depth B when P(A has the lower test loss) >= 0.75 and the lower end of its 95% "
    "percentile-bootstrap interval is above 0.5 (pairing runs by seed where two depths have the same number of "
    "runs and unpaired otherwise; Bouthillier et al. 2021); the winner is the depth better than every other "
    "depth, otherwise the depths beaten by none tie for first."
)


def _config(units: list[int], lr: float, dropout: float) -> dict:
    return {
        "dataset": {"name": "sunspots", "window": 24, "horizon": 1},
        "model": {"units": units, "dropout": dropout, "residual": False, "forget_bias": 1.0},
        "train": {
            "lr": lr,
            "epochs": 20,
            "batch_size": 64,
            "weight_decay": 0.0,
            "optimizer": "adamw",
            "grad_clip": 1.0,
            "seed": 0,
        },
    }


def _depth(
    depth: int, *, rng, units, lr, dropout, val_center, tuned_center, fixed_center, params, fixed_params, importance
) -> dict:
    trial_losses = val_center + np.abs(rng.normal(0.0, 0.25, TRIALS - 1))
    curve = [val_center + 0.9 * np.exp(-e / 4.0) + 0.002 * max(0, e - 14) ** 2 for e in range(20)]
    tuned = list(rng.normal(tuned_center, 0.01, len(SEEDS)))
    fixed = list(rng.normal(fixed_center, 0.015, len(SEEDS)))
    t_mean, t_ci = mean_ci(tuned)
    f_mean, f_ci = mean_ci(fixed)
    return {
        "depth": depth,
        "best_val_loss": float(trial_losses.min()),
        "best_config": _config(units, lr, dropout),
        "trials": {"completed": TRIALS - 1, "pruned": 0, "failed": 1},
        "params": params,
        "epochs": 300,
        "train_seconds": 41.2 * depth,
        "mlflow_run_id": f"run-depth-{depth}",
        "best_trial": {"name": f"d{depth}-t07", "number": 7, "mlflow_run_id": f"run-d{depth}-t07"},
        "expected_best": expected_best(trial_losses, n_max=TRIALS),
        "expected_best_std": expected_best_std(trial_losses, n_max=TRIALS),
        "importance": importance,
        "importance_method": "PED-ANOVA",
        "expected_best_seconds": [round(2.6 * depth * n, 3) for n in range(1, TRIALS + 1)],
        "val_curve": [float(v) for v in curve],
        "test_loss_mean": t_mean,
        "test_loss_ci95": t_ci.as_list(),
        "test_losses": tuned,
        "seeds": SEEDS,
        "fixed": {
            "config": _config([64] * depth, 0.001, 0.0),
            "params": fixed_params,
            "test_loss_mean": f_mean,
            "test_loss_ci95": f_ci.as_list(),
            "test_losses": fixed,
        },
    }


def realistic(tuned_centers=(0.26, 0.21, 0.25), fixed_centers=(0.40, 0.36, 0.30)) -> dict:
    """Depths 1, 2 and 4 of a sunspots search: tuned, depth 2 wins; with one fixed setting depth 4 looks best."""
    rng = np.random.default_rng(7)
    depths = [
        _depth(
            1,
            rng=rng,
            units=[96],
            lr=0.004217,
            dropout=0.0,
            val_center=0.33,
            tuned_center=tuned_centers[0],
            fixed_center=fixed_centers[0],
            params=38_113,
            fixed_params=17_217,
            importance={"lr": 0.71, "units_0": 0.22, "weight_decay": 0.07},
        ),
        _depth(
            2,
            rng=rng,
            units=[128, 48],
            lr=0.002683,
            dropout=0.12,
            val_center=0.29,
            tuned_center=tuned_centers[1],
            fixed_center=fixed_centers[1],
            params=104_945,
            fixed_params=50_241,
            importance={"lr": 0.52, "units_0": 0.21, "units_1": 0.09, "dropout": 0.13, "weight_decay": 0.05},
        ),
        _depth(
            4,
            rng=rng,
            units=[64, 64, 32, 16],
            lr=0.0009112,
            dropout=0.2,
            val_center=0.31,
            tuned_center=tuned_centers[2],
            fixed_center=fixed_centers[2],
            params=92_337,
            fixed_params=116_289,
            importance={
                "lr": 0.31,
                "dropout": 0.34,
                "units_0": 0.12,
                "units_1": 0.08,
                "units_2": 0.06,
                "units_3": 0.04,
                "weight_decay": 0.05,
            },
        ),
    ]
    tuned = {d["depth"]: d["test_losses"] for d in depths}
    fixed = {d["depth"]: d["fixed"]["test_losses"] for d in depths}
    verdict, fixed_verdict = compare(tuned), compare(fixed)
    settings = compare_settings(tuned, fixed, tuned_verdict=verdict, fixed_verdict=fixed_verdict, naive_loss=0.5)
    for d, gain in zip(depths, settings.gains, strict=True):
        d["tuning_gain"], d["tuning_gain_ci"] = gain.to_dict()["gain"], gain.to_dict()["ci"]

    return {
        "search": "sunspots-depths",
        "experiment_id": "1",
        "mlflow_run_id": "0f3c9a1e",
        "dataset": {"name": "sunspots", "window": 24, "horizon": 1},
        "trials_per_depth": TRIALS,
        "evaluation": {"seeds": SEEDS, "refit": "train", "top_k": 1, "confidence": 0.95},
        "baseline": BASELINE,
        "task": "regression",
        "depths": depths,
        "best_depth": min(depths, key=lambda d: d["best_val_loss"])["depth"],
        "verdict": {**verdict.to_dict(), "rule": RULE},
        "fixed_verdict": {**fixed_verdict.to_dict(), "rule": RULE},
        "conclusion_changed": settings.changed,
        "conclusion_reasons": settings.reasons,
        "tuning": settings.to_dict(),
        "conclusion": (
            f"Tuned separately, {verdict.summary}; with one fixed setting (64 units per layer, lr 0.001), "
            f"{fixed_verdict.summary}: {settings.sentence}"
        ),
    }


def validation_only() -> dict:
    """Evaluation and baseline off, and depth 6 completed no trial."""
    comparison = realistic()
    for key in ("evaluation", "baseline", "verdict", "fixed_verdict", "conclusion_changed", "conclusion"):
        comparison[key] = None
    for entry in comparison["depths"]:
        for key in ("test_loss_mean", "test_loss_ci95", "test_losses", "seeds", "fixed"):
            entry.pop(key, None)
    comparison["depths"].append(
        {
            "depth": 6,
            "best_val_loss": None,
            "best_config": None,
            "trials": {"completed": 0, "pruned": 3, "failed": 13},
            "params": None,
            "epochs": 40,
            "train_seconds": 12.0,
            "mlflow_run_id": "run-depth-6",
            "best_trial": None,
            "expected_best": [],
            "expected_best_std": [],
            "importance": None,
        }
    )
    return comparison


def _text_only(comparison: dict) -> dict:
    """Drops the curves and importances, so a test about the wording draws only the test-loss plot."""
    for entry in comparison["depths"]:
        entry.update(expected_best=[], expected_best_std=[], val_curve=[], importance=None)
    return comparison


def _write(comparison: dict, out: Path) -> list[Path]:
    """The report of a comparison.json dict, read as the file would be."""
    return write_report(Comparison.from_dict(comparison), out)


def _check_png(path: Path) -> None:
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) < 150_000, f"{path.name} is {len(data)} bytes"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600


def _links(report: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


@pytest.fixture(scope="module")
def realistic_report(tmp_path_factory):
    """The realistic comparison.json dict, the comparison read from it, the paths write_report returned and where."""
    comparison = realistic()
    typed = Comparison.from_dict(copy.deepcopy(comparison))
    out = tmp_path_factory.mktemp("realistic")
    paths = write_report(typed, out)
    return comparison, typed, paths, out


def test_realistic_report_has_every_plot_and_names_the_winner(realistic_report):
    comparison, _, paths, out = realistic_report
    assert comparison["verdict"]["winner"] == 2 and comparison["conclusion_changed"] is True

    assert paths[0] == out / "report.md"
    assert [p.name for p in paths[1:]] == list(PLOT_FILES)
    for path in paths[1:]:
        _check_png(path)
    report = paths[0].read_text()
    assert report.startswith("# ") and "sunspots-depths" in report.splitlines()[0]
    answer = report.split("## ")[0]
    assert "**Depth 2 wins**" in answer and "closest call is depth" in answer
    assert "With one fixed setting (64 units per layer, lr 0.001, dropout 0, batch size 64), depth 4 wins: " in answer
    assert comparison["tuning"]["sentence"] in answer
    assert "| **2** (winner) |" in report
    # The fixed-setting ranking sentence, since the conclusion changed.
    assert "With one fixed setting for every depth" in report
    assert "the ranking by mean test loss would have been depth 4" in report
    assert "the conclusion changed" in report
    assert "| 1 vs 2 |" in report and "depth 2 better" in report
    assert RULE in report
    assert "retrained on the training split only, best epoch chosen on validation" in report
    assert "1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007" in report
    assert "Tuning gain" in report and "## What this verdict accounts for" in report
    assert "the search's own randomness" in report and "one held-out test period" in report
    assert "stacktune train best/depth-2.yaml" in report
    assert "Depth 4: dropout (`dropout`, 0.34) and learning rate (`lr`, 0.31)." in report
    assert "[128, 48]" in report and "104,945" in report
    links = _links(report)
    assert links == list(PLOT_FILES)
    assert all((out / link).is_file() for link in links)
    assert "<" not in re.sub(r"(<=|p < |\| < 0\.001)", "", report)  # plain markdown, no HTML


def test_numbers_are_rounded_to_four_significant_digits(realistic_report):
    report = realistic_report[2][0].read_text()
    for number in re.findall(r"\d+\.\d+(?:e-?\d+)?", report):
        digits = number.split("e")[0].replace(".", "").lstrip("0")
        assert len(digits) <= 4, number


def test_input_is_not_modified(realistic_report):
    comparison, typed, _, _ = realistic_report
    assert typed.to_dict() == comparison


def test_tie_says_tie(tmp_path):
    comparison = realistic(tuned_centers=(0.30, 0.21, 0.2102))
    assert comparison["verdict"]["winner"] is None and len(comparison["verdict"]["tied"]) >= 2
    report = _write(comparison, tmp_path)[0].read_text()
    answer = report.split("## ")[0]
    assert "may be best" in answer and "The best depth is among depths 2 and 4" in answer
    assert "not shown different" in report
    assert "(winner)" not in report


@pytest.mark.parametrize(
    ("changed", "words"),
    [(False, "the conclusion is the same (same within"), (None, "whether the conclusion changed cannot be told yet")],
)
def test_unchanged_or_open_conclusion_is_reported(tmp_path, changed, words):
    comparison = realistic()
    comparison.update(conclusion_changed=changed, conclusion_reasons=["same within ±0.02"])
    del comparison["conclusion"], comparison["tuning"]
    report = _write(_text_only(comparison), tmp_path)[0].read_text()
    assert words in report
    assert "the conclusion changed:" not in report and "the conclusion changed (" not in report


def test_without_conclusion_the_answer_builds_the_fixed_sentence(tmp_path):
    comparison = realistic()
    del comparison["conclusion"], comparison["tuning"]  # as a file from before the tested statement
    report = _write(_text_only(comparison), tmp_path)[0].read_text()
    answer = report.split("## ")[0]
    assert "With one fixed setting for every depth (64 units per layer, lr 0.001" in answer
    assert "the conclusion changed" in answer


def test_validation_only_skips_test_plot_and_still_reports(tmp_path):
    stale = tmp_path / "test_loss_by_depth.png"  # left by an earlier report that had test results
    stale.write_bytes(PNG_MAGIC)
    (tmp_path / "report.md").write_text("old report")
    paths = _write(validation_only(), tmp_path)
    assert not stale.exists()
    names = [p.name for p in paths]
    assert names == ["report.md", "expected_best.png", "expected_best_seconds.png", "val_curves.png", "importance.png"]
    for path in paths[1:]:
        _check_png(path)
    report = paths[0].read_text()
    assert "By validation loss alone, depth 2" in report
    assert "Evaluation was off" in report
    assert "fixed setting" not in report.lower()
    assert "Pairwise" not in report
    assert "| 6 | – | – | – | – | 0 / 3 / 13 |" in report
    assert "stacktune train best/depth-6.yaml" not in report and "stacktune train best/depth-4.yaml" in report
    assert all((tmp_path / link).is_file() for link in _links(report))
    assert "test_loss_by_depth.png" not in report


def test_nothing_completed_writes_only_the_report(tmp_path):
    comparison = validation_only()
    comparison["depths"] = [comparison["depths"][-1]]
    comparison.pop("best_depth")
    paths = _write(comparison, tmp_path / "new" / "dir")
    assert [p.name for p in paths] == ["report.md"]
    report = paths[0].read_text()
    assert "No depth completed a trial" in report
    assert _links(report) == []


def test_baseline_without_evaluation_verdict_and_missing_pieces(tmp_path):
    """Tuned test results for some depths only, no importance, no curves, baseline with batch_size None."""
    comparison = realistic()
    comparison["baseline"] = {**BASELINE, "batch_size": None}
    for entry in comparison["depths"]:
        entry["importance"] = None
        entry["val_curve"] = []
    comparison["depths"][2]["fixed"] = None
    comparison["depths"][0].update(test_loss_mean=None, test_loss_ci95=None, test_losses=None)
    paths = _write(comparison, tmp_path)
    assert [p.name for p in paths] == [
        "report.md",
        "test_loss_by_depth.png",
        "expected_best.png",
        "expected_best_seconds.png",
    ]
    for path in paths[1:]:
        _check_png(path)
    report = paths[0].read_text()
    assert "What mattered" not in report
    assert all((tmp_path / link).is_file() for link in _links(report))


def test_classification_labels_and_accuracy(tmp_path):
    comparison = realistic()
    comparison["task"] = "classification"
    for entry in comparison["depths"]:
        entry["test_accuracy_mean"] = 0.9 - 0.01 * entry["depth"]
    report = _write(comparison, tmp_path)[0].read_text()
    assert "cross-entropy" in report
    assert "tuned test accuracy" in report and "0.88" in report


def test_missing_and_non_finite_numbers_do_not_crash(tmp_path):
    comparison = realistic()
    entry = comparison["depths"][1]
    entry["val_curve"][3] = float("nan")
    entry["val_curve"][4] = None
    entry["expected_best"][-1] = float("nan")
    entry["test_losses"][0] = None
    entry["test_losses"][1] = float("inf")
    comparison["verdict"]["pairs"][0]["p_a_better"] = None
    comparison["verdict"]["pairs"][1]["p_a_better"] = float("nan")
    comparison["depths"][0]["test_loss_ci95"] = None
    paths = _write(comparison, tmp_path)
    assert len(paths) == 6
    for path in paths[1:]:
        _check_png(path)


def _importance_report(comparison: dict, out: Path, monkeypatch) -> tuple[str, str]:
    """report.md and the x label of importance.png, with the other curves dropped to draw less."""
    for entry in comparison["depths"]:
        entry.update(expected_best=[], expected_best_std=[], val_curve=[])
    labels = {}
    save = plots._save

    def keep_label(fig, path):
        labels[Path(path).name] = fig.axes[0].get_xlabel()
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep_label)
    report = _write(comparison, out)[0].read_text()
    return report, labels["importance.png"]


def test_importance_names_the_method_that_measured_it(tmp_path, monkeypatch):
    report, label = _importance_report(realistic(), tmp_path, monkeypatch)

    section = report.split("## What mattered at each depth")[1].split("## ")[0]
    assert "PED-ANOVA (Optuna's default evaluator" in section and "best 10% of the trials" in section
    assert "Pearson divergence" in section and "not a share of the variance" in section
    assert "A depth's importances sum to 1." in section
    assert "(by " not in section  # one method for every depth: said once
    assert "fANOVA" not in report
    assert label.startswith("importance (PED-ANOVA") and "top-10% trials" in label and "variance" not in label


def test_importance_measured_by_fanova_says_it_is_a_variance_share(tmp_path, monkeypatch):
    comparison = realistic()
    for entry in comparison["depths"]:
        entry["importance_method"] = "fANOVA"
    report, label = _importance_report(comparison, tmp_path, monkeypatch)

    assert "Optuna's fANOVA estimate" in report and "share of the spread in validation loss" in report
    assert "PED-ANOVA" not in report
    assert label == "importance (fANOVA share of validation-loss variance; sums to 1 per depth)"


def test_importance_from_an_older_file_claims_no_method(tmp_path, monkeypatch):
    comparison = realistic()
    for entry in comparison["depths"]:
        del entry["importance_method"]
    report, label = _importance_report(comparison, tmp_path, monkeypatch)

    assert "Depth 4: dropout (`dropout`, 0.34) and learning rate (`lr`, 0.31)." in report
    assert "does not record how these importances were computed" in report
    assert "PED-ANOVA" not in report and "fANOVA" not in report
    assert label == "importance (method not recorded; sums to 1 per depth)"


def test_depths_measured_differently_each_say_their_method(tmp_path, monkeypatch):
    comparison = realistic()
    comparison["depths"][0]["importance_method"] = "fANOVA"
    report, label = _importance_report(comparison, tmp_path, monkeypatch)

    assert "Depth 1: learning rate (`lr`, 0.71) and units, layer 1 (`units_0`, 0.22) (by fANOVA)." in report
    assert (
        "(by fANOVA)." in report
        and "Depth 4: dropout (`dropout`, 0.34) and learning rate (`lr`, 0.31) (by PED-ANOVA)." in report
    )
    assert "Optuna's fANOVA estimate" in report and "PED-ANOVA (Optuna's default evaluator" in report
    assert label == "importance (fANOVA or PED-ANOVA; sums to 1 per depth)"


def test_a_comparison_written_before_the_best_set_and_the_trend_still_reports(tmp_path):
    """A file from the version whose verdict tested every pair (no best_set, trend, tuning or reasons) renders whole."""
    older = json.loads((DATA / "comparison-before-best-set.json").read_text())
    assert "best_set" not in older["verdict"] and "tuning" not in older
    report = _write(_text_only(older), tmp_path)[0].read_text()
    answer = report.split("## ")[0]
    assert "**Depth 2 wins**" in answer and older["conclusion"] in answer
    assert "Does adding a layer help?" not in answer and "Tuning gain" not in report
    assert "## What this verdict accounts for" in report


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (DOCS / "comparison.json", DATA / "report-sunspots-depths.md"),
        (DATA / "comparison-before-best-set.json", DATA / "report-before-best-set.md"),
    ],
    ids=["sunspots-depths", "before-best-set"],
)
def test_a_comparison_file_renders_the_report_it_always_has(tmp_path, source, expected):
    """Word for word the report.md these files gave before the report read the typed comparison, every plot drawn."""
    paths = write_report(Comparison.from_dict(json.loads(source.read_text())), tmp_path)

    assert paths[0].read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
    assert [p.name for p in paths[1:]] == list(PLOT_FILES)
    for path in paths[1:]:
        _check_png(path)
    if source.parent == DOCS:  # the walkthrough's report is the one this version writes
        assert (DOCS / "report.md").read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
