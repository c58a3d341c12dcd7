"""comparison.json as types: what the summary builds, evaluation completes, and the report, the plots
and the exports read. `to_dict`/`from_dict` round-trip the JSON; keys this version does not know are kept."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# Keys written only once they have a value (evaluation fills most of them).
_OPTIONAL = {
    "val_curve",
    "test_loss_mean",
    "test_loss_ci95",
    "test_losses",
    "seeds",
    "evaluated_rank",
    "evaluated_config",
    "test_accuracy_mean",
    "failed_runs",
    "skill",
    "expected_best_seconds",
    "overshoot_seconds",
    "fixed",
    "best_depth",
    "verdict",
    "fixed_verdict",
    "conclusion_changed",
    "conclusion_reasons",
    "conclusion",
    "fixed_loses_to_naive",
    "tuning",
    "test_loss_ci_method",
    "tuning_gain",
    "tuning_gain_ci",
    "baselines",
    "loses_to_naive",
    "headline",
    "warnings",
    "budget",
    "curves",
    "importance_method",
    "model",
    "registered",
    "replicates",
    "agreement",
}


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name == "extra":
            continue
        value = getattr(obj, f.name)
        # "cannot tell yet" is written as null wherever the reasons for it are
        tested = f.name == "conclusion_changed" and getattr(obj, "conclusion_reasons", None) is not None
        if value is None and f.name in _OPTIONAL and not tested:
            continue
        if isinstance(value, list) and value and isinstance(value[0], DepthEntry):
            value = [v.to_dict() for v in value]
        out[f.name] = value
    out.update(obj.extra)
    return out


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)} - {"extra"}
    obj = cls(**{k: v for k, v in data.items() if k in known})
    obj.extra.update({k: v for k, v in data.items() if k not in known})
    return obj


@dataclass
class DepthEntry:
    """One depth: its search (best trial, budget spent, expected best, importance) and its evaluation."""

    depth: int
    best_val_loss: float | None = None
    best_config: dict[str, Any] | None = None  # a `stacktune train` config
    trials: dict[str, int] = field(default_factory=dict)  # completed / pruned / failed
    params: int | None = None  # weights of the best trial's model
    epochs: int = 0  # summed over the depth's trials
    train_seconds: float = 0.0
    mlflow_run_id: str = ""  # the depth run
    best_trial: dict[str, Any] | None = None  # name, number, mlflow_run_id
    expected_best: list[float] = field(default_factory=list)  # of n trials, n = 1..trials_per_depth
    expected_best_std: list[float] = field(default_factory=list)
    importance: dict[str, float] | None = None
    importance_method: str | None = None  # e.g. "PED-ANOVA"; absent from files written before it was recorded
    expected_best_seconds: list[float] | None = None  # the training seconds n trials cost, beside expected_best
    overshoot_seconds: float | None = None  # with a seconds budget: how far the depth's last trial went past it
    val_curve: list[float] | None = None  # the best trial's val_loss per epoch
    model: dict[str, Any] | None = None  # the best trial as an MLflow Model: model_id, uri, its own test_loss
    # Evaluation on the test split, over seeds.
    test_loss_mean: float | None = None
    test_loss_ci95: list[float] | None = None
    test_loss_ci_method: str | None = None  # "t" or "cox-lognormal"; absent from files written before it was recorded
    test_losses: list[float] | None = None
    seeds: list[int] | None = None
    evaluated_rank: int | None = None
    evaluated_config: dict[str, Any] | None = None  # when not the best trial's config
    test_accuracy_mean: float | None = None
    failed_runs: int | None = None  # evaluation runs that failed or diverged: the worst outcome, never dropped
    skill: float | None = None  # 1 - test loss / the best naive baseline's loss
    fixed: dict[str, Any] | None = None  # the fixed setting's config, params and test losses
    tuning_gain: float | None = None  # the fixed setting's mean test loss minus the tuned one's
    tuning_gain_ci: list[float] | None = None  # its Welch interval
    # With several replicate searches per depth: each one's best (replicate, best_val_loss, best_trial, best_config,
    # params, trials) and, once evaluated, its test_losses and test_loss_mean. The fields above are then the
    # depth's overall best over its replicates (what the exports and models take) and every replicate's runs.
    replicates: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """comparison.json's entry for this depth."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthEntry:
        """The entry read back from comparison.json."""
        return _from_dict(cls, data)


@dataclass
class Comparison:
    """A finished search: every depth's entry, then (after evaluation) the verdicts and the conclusion."""

    search: str
    experiment_id: str
    mlflow_run_id: str  # the search run
    dataset: dict[str, Any]
    task: str
    trials_per_depth: int
    evaluation: dict[str, Any] | None = None  # seeds, refit, top_k, confidence, jobs, finished
    baseline: dict[str, Any] | None = None  # the fixed setting, when evaluated
    depths: list[DepthEntry] = field(default_factory=list)
    best_depth: int | None = None  # lowest validation loss
    budget: dict[str, Any] | None = None  # kind (trials | seconds) and per_depth
    curves: str | None = None  # whether the expected-best curves against training seconds cross
    verdict: dict[str, Any] | None = None
    fixed_verdict: dict[str, Any] | None = None
    conclusion_changed: bool | None = None  # None: cannot tell yet (see conclusion_reasons)
    conclusion_reasons: list[str] | None = None
    conclusion: str | None = None
    fixed_loses_to_naive: bool | None = None  # the fixed setting does worse than the naive forecast at every depth
    tuning: dict[str, Any] | None = None  # tuned versus fixed: gains, interactions, margin, needed seeds
    baselines: list[dict[str, Any]] | None = None  # naive forecasts (or the majority class) on the test split
    loses_to_naive: bool | None = None  # every evaluated depth does worse than the best naive baseline
    headline: str | None = None  # said before the verdict: every depth loses to the naive baseline
    warnings: list[dict[str, Any]] | None = None  # code, sentence, figures, depth
    registered: dict[str, Any] | None = None  # the Model Registry version of the best model: name, version, model_uri
    replicates: int | None = None  # independent searches per depth, where there are several
    # Per pair of depths, how many replicate searches agree with the verdict's call (a, b, better, agree, of).
    agreement: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, depth: int) -> DepthEntry:
        """The entry of `depth`."""
        return next(e for e in self.depths if e.depth == depth)

    def to_dict(self) -> dict[str, Any]:
        """comparison.json's content (plain JSON types)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """A comparison read back from comparison.json."""
        obj = _from_dict(cls, {**data, "depths": []})
        obj.depths = [DepthEntry.from_dict(d) for d in data.get("depths", [])]
        return obj
