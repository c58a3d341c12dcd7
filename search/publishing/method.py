"""The report's account of its method: how the depths were evaluated (seeds, refits, top-k, the fixed setting, rounds,
intervals), the replicate searches and data origins behind the verdict with how many of them agree, and what the
verdict accounts for and what it does not."""

from __future__ import annotations

from ..verdict.comparison import Comparison, DepthEntry, finite
from ..verdict.wording import depths_phrase
from .formats import baseline_text, integer, lr_text, num, units_text
from .words import level_text


def method_sections(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """The markdown from "How the depths were evaluated" to "What this verdict accounts for"; `entries` in depth
    order."""
    out = ["", "## How the depths were evaluated", ""] + _evaluation_lines(comparison, entries)
    out += _replicate_lines(comparison, entries)
    out += _origin_lines(comparison, entries)
    out += _coverage_lines(comparison)
    return out


def _evaluation_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    evaluation = comparison.evaluation
    if evaluation is None:
        return [
            "Evaluation was off: no depth was retrained or scored on the held-out test split. The numbers above are "
            "validation losses of each depth's best search trial (one seed each)."
        ]
    seeds = evaluation.seeds
    seed_list = seeds if isinstance(seeds, list) else next((e.seeds for e in entries if e.seeds), None)
    level = level_text(comparison)
    lines = []
    if seed_list:
        lines.append(
            f"- Seeds: {', '.join(str(s) for s in seed_list)} "
            f"({len(seed_list)} runs per configuration; these differ from the search's seeds)."
        )
    elif finite(seeds):
        lines.append(f"- Seeds: {int(seeds)} runs per configuration.")
    refit = evaluation.refit
    if refit in (None, "train"):
        lines.append(
            "- Each run was retrained on the training split only, best epoch chosen on validation, scored on "
            "the held-out test split the search never saw."
        )
    else:
        lines.append(
            f"- Each run was retrained (refit: {refit}), best epoch chosen on validation, scored on the held-out "
            "test split the search never saw."
        )
    top_k = evaluation.top_k
    if finite(top_k) and top_k > 1:
        lines.append(
            f"- Top-k = {int(top_k)}: each depth's {int(top_k)} best configurations by validation loss were retrained; "
            "the one with the lowest mean validation loss over the seeds represents the depth on test."
        )
    else:
        lines.append("- Top-k = 1: each depth is represented by its single best configuration from the search.")
    if comparison.baseline is not None:
        lines.append(
            f"- Fixed setting: every depth was also trained with {baseline_text(comparison.baseline)}, on the "
            "same seeds and splits, as in the usual untuned comparison."
        )
    if evaluation.sequential:
        rounds = evaluation.rounds or []
        planned = evaluation.planned_rounds or rounds
        lines.append(
            f"- Seeds came in rounds ({', '.join(str(r) for r in rounds)} seeds per configuration, of a plan of "
            f"{', '.join(str(r) for r in planned)}), stopping once every pair was decided; the rule's level is split "
            f"over the {len(planned)} planned rounds, so looking after each round does not raise the false-call rate."
        )
    failed = evaluation.failed
    if finite(failed) and failed:
        lines.append(
            f"- {int(failed)} retraining(s) failed or diverged; each counts as the worst possible test loss in the "
            "verdict, never dropped, and is left out of the means."
        )
    cox = sorted(e.depth for e in entries if e.test_loss_ci_method == "cox-lognormal")
    if cox:
        lines.append(
            f"- Intervals are {level} intervals over the seeds: Cox's log-normal interval for the mean at "
            f"{depths_phrase(cox)} (positive losses, often right-skewed, where a t interval covers too rarely)"
            + (", t intervals elsewhere" if len(cox) < len([e for e in entries if e.has_test]) else "")
            + "; Welch's for the differences between depths."
        )
    elif any(e.test_loss_ci_method == "t-replicates" for e in entries):
        lines.append(
            f"- Intervals are {level} t intervals over the replicate searches' mean test losses (Welch's for the "
            "differences between depths)."
        )
    else:
        lines.append(
            f"- Intervals are {level} t intervals over the seeds (Welch's for the differences between depths)."
        )
    return lines


def _replicate_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """Each depth's replicate searches (what each found and how it tested) and, per pair, how many searches agree
    with the verdict's call; nothing for a search with one replicate per depth."""
    if not comparison.replicates or comparison.replicates < 2:
        return []
    lines = [
        "",
        "## Replicate searches",
        "",
        f"Each depth was searched {comparison.replicates} times with other sampler seeds. What each search found, and "
        "its best configuration's mean test loss over the seeds:",
        "",
        "| depth | search | best val loss | units | lr | mean test loss |",
        "|---:|---:|---:|---|---:|---:|",
    ]
    for entry in entries:
        for found in entry.replicates or []:
            cfg = found.evaluated_config or found.best_config
            lines.append(
                f"| {entry.depth} | {found.replicate} | {num(found.best_val_loss)} | {units_text(cfg)} | "
                f"{lr_text(cfg)} | {num(found.test_loss_mean)} |"
            )
    agreement = comparison.agreement or []
    if agreement:
        lines += ["", "How many searches, compared number with number, put each pair in the verdict's order:", ""]
        lines += _agreement_lines(agreement, "in {agree} of {of} replicate searches")
    return lines


def _agreement_lines(agreement: list, counted: str) -> list[str]:
    """One line per pair: the order the verdict gives it and how many searches (or origins) agree, `counted`
    worded with {agree} and {of}."""
    lines = []
    for pair in agreement:
        if pair.leader is None:
            lines.append(f"- depths {pair.a} and {pair.b}: no order (equal means)")
            continue
        other = pair.b if pair.leader == pair.a else pair.a
        said = "beats" if pair.better is not None else "is lower than (not called)"
        lines.append(f"- depth {pair.leader} {said} depth {other} {counted.format(agree=pair.agree, of=pair.of)}")
    return lines


def _origin_where(origin) -> str:
    """Which data an origin scored on: its test rows (a rolling origin) or its validation draw (a re-split)."""
    if origin.kind == "resplit":
        return "the search's split" if origin.number == 1 else f"validation drawn with seed {integer(origin.seed)}"
    rows = origin.test_rows or []
    return f"rows {rows[0]}–{rows[1] - 1}" if len(rows) == 2 else "—"


def _origin_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """Each data origin's own figures (its test windows, the naive baseline there, each depth's mean test loss) and,
    per pair, at how many origins the pair is in the verdict's order; nothing for a single split."""
    origins = comparison.origins or []
    if len(origins) < 2:
        return []
    rolling = origins[0].kind == "rolling"
    if rolling:
        intro = (
            f"Every configuration was retrained and scored at {len(origins)} rolling origins: the held-out tail of the "
            "series is cut into consecutive test blocks, and at each block's start a model trains on everything "
            "before its validation block, which ends where the test block begins. The first origin trains and "
            "validates as the search did; no test block was seen by the search. Each run's test loss in the tables "
            "above is its loss over every origin's test windows, so a test period harder than the others weighs on "
            "every depth alike."
        )
    else:
        intro = (
            f"Every configuration was retrained and scored on {len(origins)} splits of the training and validation "
            "sequences (validation drawn anew, stratified by class, each split scaled on its own training part); "
            "the test split stays the same. Each run's test loss in the tables above is its mean over the splits."
        )
    shown = [e.depth for e in entries]
    head = "| origin | test data | test windows | naive | " + " | ".join(f"depth {d}" for d in shown) + " | lowest |"
    lines = ["", "## Data origins", "", intro, "", head, "|---:|---|---:|---:|" + "---:|" * len(shown) + "---:|"]
    for origin in origins:
        means = {d.depth: d.tuned for d in origin.depths}
        naive = origin.naive or {}
        naive_text = f"{num(naive.get('loss'))} ({str(naive.get('kind', '')).replace('_', ' ')})" if naive else "—"
        cells = " | ".join(num(means.get(d)) for d in shown)
        lines.append(
            f"| {origin.number} | {_origin_where(origin)} | {integer(origin.sizes.get('test'))} | {naive_text} | "
            f"{cells} | {integer(origin.leader) if origin.leader is not None else '—'} |"
        )
    agreement = comparison.origin_agreement or []
    if agreement:
        lines += ["", "At how many origins each pair is in the verdict's order:", ""]
        lines += _agreement_lines(agreement, "at {agree} of {of} origins")
    return lines


def _coverage_lines(comparison: Comparison) -> list[str]:
    """What the verdict accounts for and what it does not: the sources of variance it saw, each with its count."""
    evaluation = comparison.evaluation
    if evaluation is None:
        return []
    seeds = evaluation.seeds
    count = len(seeds) if isinstance(seeds, list) else (int(seeds) if finite(seeds) else None)
    seed_text = f"{count} training seeds per configuration" if count else "several training seeds per configuration"
    searches = comparison.replicates or 1
    if searches > 1:
        search_line = (
            f"- Accounted for: the search's own randomness. Each depth was searched {searches} times, each search its "
            "own Optuna study with its own sampler seed and the full budget, and each search's best was retrained "
            "over the seeds; the verdict compares the depths on the searches' mean test losses, so a lucky search "
            "counts once, not once per seed."
        )
    else:
        search_line = (
            "- Not accounted for: the search's own randomness. Each depth had one search, so the verdict is about the "
            "configurations these searches found; another search seed may find others (`replicates: 3` runs three)."
        )
    origins = comparison.origins or []
    if len(origins) > 1 and origins[0].kind == "rolling":
        windows = sum(int(o.sizes.get("test") or 0) for o in origins)
        data_line = (
            f"- Accounted for: the data split. Every run was repeated at {len(origins)} rolling origins and scored on "
            f"{windows} test windows in all; the verdict weighs every origin alike for every depth. Not covered: "
            "periods after the series ends, and a different length of the held-out tail."
        )
    elif len(origins) > 1:
        data_line = (
            f"- Accounted for in part: the data split. Every run was repeated on {len(origins)} draws of the "
            "validation set; the test split is the same for all of them, so the verdict is about that test set."
        )
    else:
        data_line = (
            "- Not accounted for: the data split. Every run was scored on one held-out test period, so the verdict is "
            "about that period (`evaluation: {origins: 4}` scores it at four)."
        )
    return [
        "",
        "## What this verdict accounts for",
        "",
        f"- Accounted for: {seed_text} (initialisation and data order), retrained from scratch on the training split.",
        search_line,
        data_line,
    ]
