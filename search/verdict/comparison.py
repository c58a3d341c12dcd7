"""comparison.json as types: what the summary builds, evaluation completes, and the report, the plots and the exports
read. Every part of the file (a depth, the evaluation, a verdict and its pairs, the fixed setting's scores, ...) is a
small dataclass with `from_dict`/`to_dict`; keys this version does not know are kept in `extra`.

Files written by any version are read here, once: a key a file lacks takes its field's default, and `to_dict` writes a
part read from a file back with the keys it had, in their order (plus whatever was set since), so reading and writing
a file changes nothing. A dict given to a part's field (as the statistics return them) is read the same way.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

# ----------------------------------------------------------------------------- numbers as a file may hold them


def finite(value: Any) -> bool:
    """Whether `value` is a finite number (a file may hold null, NaN or, written by hand, anything)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def interval(ci: Any) -> tuple[float, float] | None:
    """A `[low, high]` of finite numbers as a tuple; None for anything else."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(finite(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def values(seq: Any) -> list[float]:
    """The finite numbers of a list (None, NaN and non-numbers dropped)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) for v in seq if finite(v)]


def series(seq: Any) -> list[float]:
    """A list as floats with NaN standing in for missing entries (keeps positions for plotting)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) if finite(v) else float("nan") for v in seq]


def config_units(config: Any) -> list[int] | None:
    """The units per layer of a `stacktune train` config as comparison.json holds it; None when it has none."""
    match config:
        case {"model": {"units": list() as units}} if units:
            return units
    return None


def config_lr(config: Any) -> Any:
    """The learning rate of a `stacktune train` config as comparison.json holds it; None when it has none."""
    match config:
        case {"train": {"lr": lr}}:
            return lr
    return None


# ----------------------------------------------------------------------------- reading and writing a part


class _Part:
    """A part of comparison.json. Subclasses are dataclasses whose last field is `extra`.

    `_OPTIONAL` names the fields that a part built in code leaves out of its JSON while they are None; `_PARTS` maps a
    field to the part class it holds (a list of them where the JSON holds a list).
    """

    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    _PARTS: ClassVar[dict[str, type[_Part]]] = {}
    _LISTS: ClassVar[dict[str, type[_Part]]] = {}
    _keys: tuple[str, ...] | None = None  # the keys it was read with, in their order; None when built in code
    extra: dict[str, Any]

    def __setattr__(self, name: str, value: Any) -> None:
        # A part handed over as the dict comparison.json holds is read here, wherever it comes from.
        if name in self._PARTS and isinstance(value, dict):
            value = self._PARTS[name].from_dict(value)
        elif name in self._LISTS and isinstance(value, list):
            value = [self._LISTS[name].from_dict(v) if isinstance(v, dict) else v for v in value]
        object.__setattr__(self, name, value)

    def _leaves_out(self, name: str, value: Any) -> bool:
        """Whether a part built in code leaves field `name`, holding `value`, out of its JSON."""
        return value is None and name in self._OPTIONAL

    def to_dict(self) -> dict[str, Any]:
        """The part as comparison.json holds it (plain JSON types)."""
        read = self._keys
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if read is not None and f.name not in read:
                if value == _default(f):
                    continue  # absent from the file it was read from, and not set since
            elif read is None and self._leaves_out(f.name, value):
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        if read:
            out = {k: out[k] for k in read if k in out} | {k: v for k, v in out.items() if k not in read}
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str | None = None):
        """The part read from `data`, its dict in comparison.json (written by this version or an earlier one);
        ValueError, naming the key (`where` is the part's own), for a value not of the kind the file holds."""
        if not isinstance(data, dict):
            raise ValueError(f"comparison.json: {where or 'the file'} must be an object, got {_shown(data)}")
        at = f"{where}." if where else ""
        known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        given = {k: v for k, v in data.items() if k in known}
        for name, part in cls._PARTS.items():
            if given.get(name) is not None:
                given[name] = part.from_dict(given[name], where=at + name)
        for name, part in cls._LISTS.items():
            items = given.get(name)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ValueError(f"comparison.json: {at}{name} must be a list, got {_shown(items)}")
            given[name] = [part.from_dict(v, where=f"{at}{name}[{i}]") for i, v in enumerate(items)]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]  # type: ignore[arg-type]
        if missing := [name for name in required if name not in given]:
            raise ValueError(f"comparison.json: {where or 'the file'} has no {', '.join(map(repr, missing))}")
        obj = cls(**given)
        obj.extra.update({k: v for k, v in data.items() if k not in known})
        object.__setattr__(obj, "_keys", tuple(data))
        return obj


def _default(f) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _plain(value: Any) -> Any:
    if isinstance(value, _Part):
        return value.to_dict()
    if isinstance(value, list) and any(isinstance(v, _Part) for v in value):
        return [v.to_dict() if isinstance(v, _Part) else v for v in value]
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- the parts


@dataclass
class DatasetInfo(_Part):
    """The dataset section of the spec, as the search ran it (`name` or `csv`, window, horizon, ...)."""

    _OPTIONAL = frozenset({"name", "csv", "window", "horizon", "season", "transform"})

    name: str | None = None
    csv: str | None = None
    window: int | None = None
    horizon: int | None = None
    season: int | None = None
    transform: str | None = None  # "none", or "diff": losses are then on the series' changes
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FixedSetting(_Part):
    """The one fixed setting every depth is also trained with (the spec's `baseline`)."""

    units: int | None = None
    lr: float | None = None
    dropout: float | None = None
    batch_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget(_Part):
    """What every depth got the same of: `kind` "trials" or "seconds", and with seconds `per_depth`."""

    kind: str | None = None
    per_depth: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationInfo(_Part):
    """How the depths were retrained and scored on the test split."""

    _OPTIONAL = frozenset({"sequential", "rounds", "planned_rounds", "missing", "planned", "replicates", "origins"})

    seeds: list[int] | int | None = None  # the seeds (older files: how many)
    refit: str | None = None  # "train" (None in older files: the same)
    top_k: int | None = None  # None in older files: 1
    confidence: float | None = None
    jobs: int | None = None
    replicates: int | None = None  # searches per depth whose bests were retrained (None in older files: 1)
    origins: int | None = None  # data origins every candidate was scored on (None in older files: 1)
    finished: int | None = None
    failed: int | None = None  # retrainings that failed or diverged
    sequential: bool | None = None  # `seeds: auto`: seeds came in rounds
    rounds: list[int] | None = None  # the seeds per configuration after each round that ran
    planned_rounds: list[int] | None = None
    missing: int | None = None  # an incomplete evaluation: retrainings that did not run, of `planned`
    planned: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pair(_Part):
    """One pair of depths in a verdict: the difference of mean test losses, P(a beats b), the tests' p-values."""

    a: int | None = None
    b: int | None = None
    better: int | None = None  # the depth called better, if either is
    p_a_better: float | None = None
    p_a_better_ci: list[float] | None = None  # absent from files written before it was recorded
    p_value: float | None = None
    p_adjusted: float | None = None
    difference: float | None = None  # mean test loss of a minus b's
    difference_ci: list[float] | None = None
    n_a: int | None = None
    n_b: int | None = None
    decidable: bool | None = None  # False: too few runs for any difference to reach the level
    extra: dict[str, Any] = field(default_factory=dict)

    def p_beats(self, depth: int) -> float | None:
        """P(`depth` beats the other depth of the pair), flipped when `depth` is b; None when it is not a number."""
        if not finite(self.p_a_better):
            return None
        return float(self.p_a_better) if self.a == depth else 1.0 - float(self.p_a_better)

    def rival(self, depth: int) -> int | None:
        """The other depth of the pair."""
        return self.b if self.a == depth else self.a


@dataclass
class Trend(_Part):
    """The change in mean test loss per added layer, with its interval (three depths or more)."""

    slope: float | None = None
    ci: list[float] | None = None
    p_value: float | None = None
    direction: str | None = None  # "down", "up" or None (not significant)
    depths: list[int] = field(default_factory=list)
    failed_left_out: int | None = None
    summary: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict(_Part):
    """A comparison of the depths (tuned, or with the fixed setting): the winner or the set that may be best."""

    _PARTS = {"trend": Trend}
    _LISTS = {"pairs": Pair}

    winner: int | None = None
    tied: list[int] = field(default_factory=list)  # the set that may be best, under its older name
    best_set: list[int] | None = None  # absent from files written before it was recorded
    undecided: bool = False  # too few seeds for the set ever to shrink
    pairs: list[Pair] = field(default_factory=list)
    trend: Trend | None = None
    rule: str | None = None
    needed_seeds: int | None = None
    summary: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names_best(self) -> bool:
        """Whether it names the winner or the depths tied for first (an incomplete evaluation names none)."""
        return self.winner is not None or bool(self.tied)


@dataclass
class TuningGain(_Part):
    """How much tuning lowered one depth's mean test loss against the fixed setting, with its Welch interval."""

    depth: int | None = None
    gain: float | None = None
    ci: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Interaction(_Part):
    """One pair of depths, tuned and fixed: whether their difference is the same in both settings."""

    a: int | None = None
    b: int | None = None
    tuned_difference: float | None = None
    fixed_difference: float | None = None
    interaction: float | None = None
    interaction_ci: list[float] | None = None
    p_adjusted: float | None = None
    equivalent: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tuning(_Part):
    """Tuned versus the fixed setting: whether the conclusion changed, and the figures behind it."""

    _LISTS = {"gains": TuningGain, "interactions": Interaction}

    changed: bool | None = None
    reasons: list[str] = field(default_factory=list)
    gains: list[TuningGain] = field(default_factory=list)
    margin: float | None = None
    margin_share: float | None = None
    fixed_loses_to_naive: bool | None = None
    tuned_beats_naive: bool | None = None
    needed_seeds: int | None = None
    interactions: list[Interaction] = field(default_factory=list)
    sentence: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NaiveBaseline(_Part):
    """A naive forecast (or the majority class) scored on the test split; its own figures stay in `extra`."""

    _OPTIONAL = frozenset({"accuracy"})

    kind: str = ""  # persistence, seasonal_naive, majority_class
    loss: float | None = None
    description: str = ""
    accuracy: float | None = None  # the majority class's
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The kind in words ("seasonal naive")."""
        return self.kind.replace("_", " ")


@dataclass
class SearchWarning(_Part):
    """A premise of the verdict that looks shaky, with the figures behind it."""

    code: str = ""
    sentence: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    depth: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registration(_Part):
    """The Model Registry version the best model was registered as."""

    name: str | None = None
    version: int | None = None
    model_uri: str | None = None
    alias_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialCounts(_Part):
    """How many of a depth's trials completed, were pruned and failed."""

    _OPTIONAL = frozenset({"completed", "pruned", "failed"})

    completed: int | None = None
    pruned: int | None = None
    failed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n for n in (self.completed, self.pruned, self.failed) if finite(n))


@dataclass
class BestTrial(_Part):
    """A depth's best search trial: its name, number and MLflow run (and its replicate search, where there are
    several)."""

    _OPTIONAL = frozenset({"replicate"})

    name: str | None = None
    number: int | None = None
    mlflow_run_id: str | None = None
    replicate: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo(_Part):
    """A best trial logged as an MLflow Model: its id, URI and the test loss of its very weights."""

    model_id: str | None = None
    uri: str | None = None
    test_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FixedResult(_Part):
    """A depth trained with the fixed setting over the evaluation's seeds: its config, size and test scores."""

    config: dict[str, Any] | None = None  # a `stacktune train` config
    params: int | None = None
    test_losses: list[float | None] | None = None  # None where a run failed
    failed_runs: int | None = None
    test_loss_mean: float | None = None
    test_loss_ci95: list[float] | None = None
    test_loss_ci_method: str | None = None  # absent from files written before it was recorded
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_test(self) -> bool:
        """Whether it has a mean test loss to show."""
        return finite(self.test_loss_mean)


@dataclass
class ReplicateSearch(_Part):
    """One of a depth's replicate searches: its own best trial and configuration, and once evaluated its test
    losses over the seeds."""

    _OPTIONAL = frozenset({"test_losses", "test_loss_mean", "evaluated_rank", "evaluated_config", "best_config"})
    _PARTS = {"trials": TrialCounts, "best_trial": BestTrial}

    replicate: int
    trials: TrialCounts = field(default_factory=TrialCounts)
    best_val_loss: float | None = None
    best_trial: BestTrial | None = None
    best_config: dict[str, Any] | None = None  # a `stacktune train` config
    params: int | None = None
    test_losses: list[float | None] | None = None  # None where a run failed
    test_loss_mean: float | None = None
    evaluated_rank: int | None = None
    evaluated_config: dict[str, Any] | None = None  # when not its best trial's config
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Agreement(_Part):
    """For a pair of depths: the order the verdict's call gives (or without a call, the means), and in how many
    replicate searches, number against number, the pair is in that order (in `origin_agreement`: at how many data
    origins)."""

    a: int
    b: int
    better: int | None = None  # the verdict's call, None without one
    leader: int | None = None  # the call, or the lower overall mean
    agree: int = 0
    of: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OriginDepth(_Part):
    """A depth's mean test loss at one data origin: tuned (the runs the verdict uses) and with the fixed setting."""

    depth: int
    tuned: float | None = None  # None where a run failed there
    fixed: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Origin(_Part):
    """One data origin of the evaluation: a rolling origin of a series (its test rows start at `cutoff`) or a re-split
    of independent sequences (validation drawn with `seed`), its sizes, its best naive baseline and each depth's
    mean test loss there."""

    _OPTIONAL = frozenset({"cutoff", "test_rows", "seed", "segments"})
    _LISTS = {"depths": OriginDepth}

    number: int
    of: int | None = None
    kind: str = "rolling"  # rolling | resplit
    cutoff: int | None = None  # the first test row (of the transformed series)
    test_rows: list[int] | None = None  # [start, end)
    seed: int | None = None  # a re-split's
    segments: dict[str, list[int]] | None = None  # the rows of its train, val and test segments
    sizes: dict[str, int] = field(default_factory=dict)  # windows (or sequences) of train, val and test
    naive: dict[str, Any] | None = None  # the best naive baseline there: kind and loss
    depths: list[OriginDepth] = field(default_factory=list)
    leader: int | None = None  # the depth with the lowest tuned mean there
    extra: dict[str, Any] = field(default_factory=dict)


# Keys of a depth written only once they have a value (evaluation fills most of them).
_DEPTH_OPTIONAL = frozenset(
    {
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
        "test_loss_ci_method",
        "tuning_gain",
        "tuning_gain_ci",
        "importance_method",
        "model",
        "replicates",
    }
)


@dataclass
class DepthEntry(_Part):
    """One depth: its search (best trial, budget spent, expected best, importance) and its evaluation."""

    _OPTIONAL = _DEPTH_OPTIONAL
    _PARTS = {"trials": TrialCounts, "best_trial": BestTrial, "model": ModelInfo, "fixed": FixedResult}
    _LISTS = {"replicates": ReplicateSearch}

    depth: int
    best_val_loss: float | None = None
    best_config: dict[str, Any] | None = None  # a `stacktune train` config
    trials: TrialCounts = field(default_factory=TrialCounts)
    params: int | None = None  # weights of the best trial's model
    epochs: int = 0  # summed over the depth's trials
    train_seconds: float = 0.0
    mlflow_run_id: str = ""  # the depth run
    best_trial: BestTrial | None = None
    expected_best: list[float] = field(default_factory=list)  # of n trials, n = 1..trials_per_depth
    expected_best_std: list[float] = field(default_factory=list)
    importance: dict[str, float] | None = None
    importance_method: str | None = None  # e.g. "PED-ANOVA"; absent from files written before it was recorded
    expected_best_seconds: list[float] | None = None  # the training seconds n trials cost, beside expected_best
    overshoot_seconds: float | None = None  # with a seconds budget: how far the depth's last trial went past it
    val_curve: list[float] | None = None  # the best trial's val_loss per epoch
    model: ModelInfo | None = None  # the best trial as an MLflow Model
    # Evaluation on the test split, over seeds.
    test_loss_mean: float | None = None
    test_loss_ci95: list[float] | None = None
    test_loss_ci_method: str | None = None  # "t" or "cox-lognormal"; absent from files written before it was recorded
    test_losses: list[float | None] | None = None  # None where a run failed
    seeds: list[int] | None = None
    evaluated_rank: int | None = None
    evaluated_config: dict[str, Any] | None = None  # when not the best trial's config
    test_accuracy_mean: float | None = None
    failed_runs: int | None = None  # evaluation runs that failed or diverged: the worst outcome, never dropped
    skill: float | None = None  # 1 - test loss / the best naive baseline's loss
    fixed: FixedResult | None = None  # the fixed setting's config, params and test losses
    tuning_gain: float | None = None  # the fixed setting's mean test loss minus the tuned one's
    tuning_gain_ci: list[float] | None = None  # its Welch interval
    # With several replicate searches per depth, each one's best and test losses; the fields above are then the
    # depth's best over them (what the exports and models take) and every search's retrainings.
    replicates: list[ReplicateSearch] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_test(self) -> bool:
        """Whether it has a mean test loss to show."""
        return finite(self.test_loss_mean)

    @property
    def tested_config(self) -> dict[str, Any] | None:
        """The tuned configuration whose test scores the entry carries (a top-k runner-up may stand in)."""
        cfg = self.evaluated_config or self.best_config
        return cfg if isinstance(cfg, dict) else None

    @property
    def fixed_scores(self) -> FixedResult | None:
        """The fixed setting's result when it has a mean test loss to show."""
        return self.fixed if self.fixed is not None and self.fixed.has_test else None


# Keys of the comparison written only once they have a value.
_COMPARISON_OPTIONAL = frozenset(
    {
        "best_depth",
        "verdict",
        "fixed_verdict",
        "conclusion_changed",
        "conclusion_reasons",
        "conclusion",
        "fixed_loses_to_naive",
        "tuning",
        "baselines",
        "loses_to_naive",
        "headline",
        "warnings",
        "budget",
        "curves",
        "registered",
        "replicates",
        "agreement",
        "origins",
        "origin_agreement",
    }
)


@dataclass
class Comparison(_Part):
    """A finished search: every depth's entry, then (after evaluation) the verdicts and the conclusion."""

    _OPTIONAL = _COMPARISON_OPTIONAL
    _PARTS = {
        "dataset": DatasetInfo,
        "evaluation": EvaluationInfo,
        "baseline": FixedSetting,
        "budget": Budget,
        "verdict": Verdict,
        "fixed_verdict": Verdict,
        "tuning": Tuning,
        "registered": Registration,
    }
    _LISTS = {
        "depths": DepthEntry,
        "baselines": NaiveBaseline,
        "warnings": SearchWarning,
        "agreement": Agreement,
        "origins": Origin,
        "origin_agreement": Agreement,
    }

    search: str
    experiment_id: str
    mlflow_run_id: str  # the search run
    dataset: DatasetInfo
    task: str
    trials_per_depth: int
    evaluation: EvaluationInfo | None = None
    baseline: FixedSetting | None = None  # the fixed setting, when evaluated
    depths: list[DepthEntry] = field(default_factory=list)
    best_depth: int | None = None  # lowest validation loss
    budget: Budget | None = None
    curves: str | None = None  # whether the expected-best curves against training seconds cross
    verdict: Verdict | None = None
    fixed_verdict: Verdict | None = None
    conclusion_changed: bool | None = None  # None: cannot tell yet (see conclusion_reasons)
    conclusion_reasons: list[str] | None = None
    conclusion: str | None = None
    fixed_loses_to_naive: bool | None = None  # the fixed setting does worse than the naive forecast at every depth
    tuning: Tuning | None = None  # tuned versus fixed: gains, interactions, margin, needed seeds
    baselines: list[NaiveBaseline] | None = None  # naive forecasts (or the majority class) on the test split
    loses_to_naive: bool | None = None  # every evaluated depth does worse than the best naive baseline
    headline: str | None = None  # said before the verdict: every depth loses to the naive baseline
    warnings: list[SearchWarning] | None = None
    registered: Registration | None = None  # the Model Registry version of the best model
    replicates: int | None = None  # independent searches per depth, where there are several
    agreement: list[Agreement] | None = None  # per pair of depths, how many replicate searches agree with the call
    origins: list[Origin] | None = None  # with several data origins, each one's figures
    origin_agreement: list[Agreement] | None = None  # per pair of depths, at how many origins it is in the call's order
    extra: dict[str, Any] = field(default_factory=dict)

    def _leaves_out(self, name: str, value: Any) -> bool:
        # "cannot tell yet" is written as null wherever the reasons for it are
        if name == "conclusion_changed" and self.conclusion_reasons is not None:
            return False
        return super()._leaves_out(name, value)

    def entry(self, depth: int) -> DepthEntry:
        """The entry of `depth`."""
        return next(e for e in self.depths if e.depth == depth)

    @property
    def confidence(self) -> float:
        """The evaluation's confidence level (0.95 where the file has none that makes sense)."""
        conf = self.evaluation.confidence if self.evaluation is not None else None
        return float(conf) if finite(conf) and 0 < conf < 1 else 0.95

    @property
    def best_baseline(self) -> NaiveBaseline | None:
        """The naive baseline with the lowest finite test loss, or None when there is none."""
        scored = [b for b in self.baselines or [] if finite(b.loss)]
        return min(scored, key=lambda b: float(b.loss)) if scored else None
