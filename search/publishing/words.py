"""The words the report's text and its plots share: the confidence level, the loss's unit, a parameter's name,
what an importance method's numbers measure, and what the report says under each plot."""

from __future__ import annotations

from ..verdict.comparison import Comparison, DepthEntry


def level_text(comparison: Comparison) -> str:
    """The evaluation's confidence level as the report writes it ("95%")."""
    return f"{comparison.confidence * 100:g}%"


def loss_unit(comparison: Comparison) -> str:
    return "cross-entropy" if comparison.task == "classification" else "MSE, standardised"


_PARAM_LABELS = {"lr": "learning rate", "weight_decay": "weight decay", "batch_size": "batch size"}


def param_label(name: str) -> str:
    """A searched parameter's name in words ("units, layer 2" for units_1)."""
    if name.startswith("units_") and name[6:].isdigit():
        return f"units, layer {int(name[6:]) + 1}"
    return _PARAM_LABELS[name] if name in _PARAM_LABELS else name.replace("_", " ")


# What each importance method's numbers measure: the report's sentence and the plot's axis label. The
# PED-ANOVA wording describes the evaluator as search/engine/studies.py builds it (Optuna's defaults).
_IMPORTANCE_MEANINGS = {
    "PED-ANOVA": (
        "Importance is PED-ANOVA (Optuna's default evaluator; Watanabe et al. 2023) over each depth's completed "
        "trials: how differently a parameter's values are spread among the best 10% of the trials (lowest "
        "validation loss) than among all of them (a Pearson divergence between the two); a large value means "
        "reaching the top 10% depended on setting that parameter well. It is not a share of the variance in "
        "validation loss.",
        "PED-ANOVA divergence, top-10% trials vs all",
    ),
    "fANOVA": (
        "Importance is Optuna's fANOVA estimate over each depth's completed trials: the share of the spread in "
        "validation loss a parameter explains.",
        "fANOVA share of validation-loss variance",
    ),
}


def importance_methods(entries: list[DepthEntry]) -> list[str | None]:
    """The importance methods of the depths that have importances, each once, in depth order (None: not recorded)."""
    found: list[str | None] = []
    for e in entries:
        method = e.importance_method
        if isinstance(e.importance, dict) and method not in found:
            found.append(method if isinstance(method, str) else None)
    return found


def importance_meaning(method: str | None) -> str:
    """What one method's importance numbers measure, as the report's sentence."""
    if method is None:
        return (
            "comparison.json does not record how these importances were computed (it was written before stacktune "
            "recorded the method), so read them only as a ranking within a depth."
        )
    if method in _IMPORTANCE_MEANINGS:
        return _IMPORTANCE_MEANINGS[method][0]
    return f"Importance is Optuna's {method} estimate over each depth's completed trials."


def importance_axis_words(method: str | None) -> str | None:
    """What one method's numbers measure, in the few words of a plot's axis; None for a method without them."""
    return _IMPORTANCE_MEANINGS[method][1] if method in _IMPORTANCE_MEANINGS else None


# What the report says under each plot: its alt text and how to read it ({level} is the confidence level).
CAPTIONS = {
    "test_loss_by_depth.png": (
        "Test loss by depth",
        "How to read it: lower is better; each marker is a depth's mean test loss over the seeds with its {level} "
        "interval, faint dots are single seeds, blue is tuned per depth and grey is the one fixed setting; the "
        "shaded column marks the winner (or the depths tied for first), and the dashed red line the naive forecast "
        "on the same test split. With several replicate searches, open diamonds are each search's mean; with several "
        "data origins, crosses are each origin's mean (a period harder than the others lifts every depth's cross).",
    ),
    "expected_best.png": (
        "Expected best validation loss versus trials",
        "How to read it: the expected best validation loss if a depth had been given only n trials (Dodge et al. "
        "2019), with a ±1 std band; a curve still falling at the right edge means that depth would likely gain from "
        "a larger budget, and curves that cross mean the ranking depends on the budget.",
    ),
    "expected_best_seconds.png": (
        "Expected best validation loss versus training seconds",
        "How to read it: the same curves against the training time n trials cost each depth; a deep stack's trials "
        "take longer, so at an equal number of trials it has had more time: where these curves cross, the answer "
        "depends on how much time each depth is given.",
    ),
    "val_curves.png": (
        "Validation loss per epoch of each depth's best trial",
        "How to read it: the validation loss of each depth's best search trial after every epoch; a curve that "
        "turns up at the end is overfitting, one still falling could use more epochs.",
    ),
    "importance.png": (
        "Hyperparameter importance by depth",
        "How to read it: the longer the bar, the more that parameter mattered among a depth's trials, by the "
        'method the axis names (what its numbers measure is under "What mattered at each depth"); each depth\'s '
        "bars (one colour) sum to 1, so read a colour top to bottom to see what mattered at that depth.",
    ),
}
