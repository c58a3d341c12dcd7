"""A finished search as a readable report: report.md plus a few plots, from its `Comparison` alone.

The report answers "does stacking more layers help on my data?": the verdict with its
uncertainty, how it compares with the usual one-fixed-setting comparison, the tables behind
it, how the test numbers were produced and how to retrain any depth. Every field of
comparison.json that evaluation or the baseline would fill may be absent or null; the report
then says what it can from what is there and leaves out the plots that have no data.

This module writes the markdown; plots.py draws the PNGs (importing matplotlib only when it does),
so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..verdict.comparison import (
    Comparison,
    DatasetInfo,
    DepthEntry,
    FixedSetting,
    Pair,
    TrialCounts,
    Verdict,
    config_lr,
    config_units,
    finite,
    interval,
)
from ..verdict.wording import depths_phrase, join
from .plots import CAPTIONS, PLOT_FILES, draw_plots, importance_meaning, importance_methods, level_text, param_label

__all__ = ["write_report", "PLOT_FILES"]


# ----------------------------------------------------------------------------- small helpers


def _num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; '–' for missing or non-finite values."""
    if not finite(value):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def _int(value: Any) -> str:
    return f"{int(value):,}" if finite(value) else "–"


def _mean_ci(mean: Any, ci: Any) -> str:
    """'0.2100 [0.1900, 0.2300]' style: the mean, then its interval when there is one."""
    if not finite(mean):
        return "–"
    bounds = interval(ci)
    if bounds is None:
        return _num(mean)
    return f"{_num(mean)} [{_num(bounds[0])}, {_num(bounds[1])}]"


def _units(cfg: dict | None) -> str:
    units = config_units(cfg)
    if units is None:
        return "–"
    return "[" + ", ".join(str(u) for u in units) + "]"


def _lr(cfg: dict | None) -> str:
    return _num(config_lr(cfg))


def _pvalue(value: Any) -> str:
    if not finite(value):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _p_clause(value: Any) -> str:
    """'adjusted p < 0.001' or 'adjusted p = 0.012', for running text."""
    shown = _pvalue(value)
    return f"adjusted p {shown}" if shown.startswith("<") else f"adjusted p = {shown}"


def _prob(value: Any) -> str:
    return f"{value:.2f}" if finite(value) else "–"


def _prob_ci(value: Any, ci: Any) -> str:
    bounds = interval(ci)
    if bounds is None:
        return _prob(value)
    return f"{_prob(value)} [{_prob(bounds[0])}, {_prob(bounds[1])}]"


def _prose_ci(mean: Any, ci: Any, level: str) -> str:
    """'0.2108 (95% CI 0.203–0.2184)' for running text."""
    bounds = interval(ci)
    if bounds is None:
        return _num(mean)
    return f"{_num(mean)} ({level} CI {_num(bounds[0])}–{_num(bounds[1])})"


def _dataset_text(dataset: DatasetInfo | None) -> str:
    if dataset is None:
        return "the dataset"
    name = dataset.name or (Path(str(dataset.csv)).name if dataset.csv else None) or "the dataset"
    sizes = {"window": dataset.window, "horizon": dataset.horizon, "season": dataset.season}
    extras = [f"{k} {v}" for k, v in sizes.items() if v is not None]
    if dataset.transform not in (None, "none"):
        extras.append(f"transform {dataset.transform}: losses are on the series' changes")
    return f"`{name}`" + (f" ({', '.join(extras)})" if extras else "")


def _baseline_text(baseline: FixedSetting | None) -> str:
    if baseline is None:
        return "one fixed setting"
    parts = []
    if baseline.units is not None:
        parts.append(f"{baseline.units} units per layer")
    if baseline.lr is not None:
        parts.append(f"lr {_num(baseline.lr)}")
    if baseline.dropout is not None:
        parts.append(f"dropout {_num(baseline.dropout)}")
    if baseline.batch_size is not None:
        parts.append(f"batch size {baseline.batch_size}")
    return ", ".join(parts) if parts else "one fixed setting"


def _named(verdict: Verdict | None) -> Verdict | None:
    """The verdict when it names the winner or the depths tied for first, else None."""
    return verdict if verdict is not None and verdict.names_best else None


def _budget_phrase(trials: Any, searches: int = 1) -> str:
    if not trials:
        return "the same budget"
    if searches > 1:
        return f"the same budget ({trials} trials per search, {searches} searches per depth)"
    return f"the same budget ({trials} trials per depth)"


# ----------------------------------------------------------------------------- the written answer


def _answer(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """A few sentences: who wins (or the tie, or that the seeds cannot tell), how sure, what the naive forecast and
    the fixed setting would have said."""
    verdict = _named(comparison.verdict)
    tested = [e for e in entries if e.has_test]
    if verdict is not None and tested:
        sentences = [f"**{comparison.headline}**"] if comparison.headline else []
        sentences += _verdict_sentences(comparison, verdict, tested)
        sentences += _trend_sentences(verdict)
        sentences += _naive_sentences(comparison, tested)
        conclusion = comparison.conclusion
        tuning = comparison.tuning
        fixed_verdict = _named(comparison.fixed_verdict)
        if tuning is not None and tuning.sentence and fixed_verdict is not None and fixed_verdict.summary:
            # The tuned verdict is said above: only the fixed setting's side of the conclusion follows.
            sentences.append(
                f"With one fixed setting ({_baseline_text(comparison.baseline)}), {fixed_verdict.summary}: "
                f"{tuning.sentence}"
            )
        elif isinstance(conclusion, str) and conclusion.strip():
            sentences.append(conclusion.strip())
        elif fixed_verdict is not None:
            sentences.append(_fixed_sentence(comparison, entries))
        return sentences
    budget = _budget_phrase(comparison.trials_per_depth)
    sentences = []
    ranked = [e for e in entries if finite(e.best_val_loss)]
    if not ranked:
        return ["No depth completed a trial, so there is nothing to compare yet; see the trial counts below."]
    ranked.sort(key=lambda e: e.best_val_loss)
    best = ranked[0]
    text = f"By validation loss alone, depth {best.depth}'s best trial scored lowest ({_num(best.best_val_loss)}"
    if len(ranked) > 1:
        text += f" against {_num(ranked[1].best_val_loss)} for depth {ranked[1].depth}, the runner-up"
    sentences.append(text + f"), each depth searched with {budget}.")
    sentences.append(
        "There is no verdict with uncertainty: evaluation on the held-out test split was off, and the best of "
        "many trials on the validation split is an optimistic, single-seed number; turn evaluation on to "
        "retrain each depth over several seeds and get one."
    )
    return sentences


def _trend_sentences(verdict: Verdict) -> list[str]:
    """Whether adding a layer helps, as the slope of the mean test loss per added layer (three depths or more)."""
    trend = verdict.trend
    if trend is None or not trend.summary:
        return []
    summary = trend.summary
    failed = trend.failed_left_out
    note = f" ({int(failed)} failed run(s) left out of the slope)" if finite(failed) and failed else ""
    return [f"Does adding a layer help? {summary[0].upper()}{summary[1:]}{note}."]


def _naive_sentences(comparison: Comparison, tested: list[DepthEntry]) -> list[str]:
    """When only some depths do worse than the naive forecast, which ones (the headline covers all of them)."""
    if comparison.loses_to_naive:
        return []
    best = comparison.best_baseline
    losing = [e for e in tested if finite(e.skill) and e.skill <= 0]
    if best is None or not losing:
        return []
    skills = join([f"{_num(e.skill, 2)} at depth {e.depth}" for e in losing])
    verb = "does" if len(losing) == 1 else "do"
    return [
        f"{depths_phrase(e.depth for e in losing).capitalize()} {verb} no better than the naive "
        f"{best.name} forecast (test loss {_num(best.loss)}; skill {skills})."
    ]


def _verdict_sentences(comparison: Comparison, verdict: Verdict, tested: list[DepthEntry]) -> list[str]:
    """What the verdict says, in words, for every outcome: a winner, a tie, a partial order, too few seeds."""
    level = level_text(comparison)
    by_depth = {e.depth: e for e in tested}
    n_seeds = max(len(e.test_losses or []) for e in tested)
    seeds = f" over {n_seeds} seeds" if n_seeds else ""
    searches = comparison.replicates or 1
    if searches > 1 and n_seeds:
        seeds = f" over {searches} searches of {n_seeds // searches} seeds each"
    origins = len(comparison.origins or [])
    if origins > 1 and n_seeds:
        seeds += f", each at {origins} {'rolling origins' if comparison.origins[0].kind == 'rolling' else 'splits'}"
    budget = _budget_phrase(comparison.trials_per_depth, searches)
    winner = verdict.winner
    summary = verdict.summary or ""
    if winner is not None and len(tested) == 1:
        e = by_depth[winner] if winner in by_depth else tested[0]
        return [
            f"Only depth {winner} could be evaluated on the held-out test split "
            f"(mean test loss {_prose_ci(e.test_loss_mean, e.test_loss_ci95, level)}{seeds}), "
            "so there is nothing to compare it with."
        ]
    pairs = verdict.pairs or []
    if winner is not None:
        e = by_depth[winner] if winner in by_depth else None
        mean, ci = (e.test_loss_mean, e.test_loss_ci95) if e is not None else (None, None)
        text = [
            f"**Depth {winner} wins**: tuned with {budget}, its best configuration has the lowest "
            f"mean test loss, {_prose_ci(mean, ci, level)}{seeds}, "
            "and the decision rule below shows it better than every other depth."
        ]
        duels = [p for p in pairs if winner in (p.a, p.b) and finite(p.p_adjusted)]
        if duels:
            closest = max(duels, key=lambda p: p.p_adjusted)
            rival = closest.rival(winner)
            text.append(
                f"The closest call is depth {rival}: P(depth {winner} beats depth {rival}) = "
                f"{_prob(closest.p_beats(winner))}, {_p_clause(closest.p_adjusted)}."
            )
        return text
    means = join([f"{_num(by_depth[d].test_loss_mean)} for depth {d}" for d in sorted(by_depth)])
    if verdict.undecided:
        needed = verdict.needed_seeds
        more = f"evaluation.seeds: {needed}" if needed else "more evaluation.seeds"
        return [
            f"**Undecided: {summary}.** With so few runs per depth no difference could ever reach the rule's level, "
            f"whatever the losses (mean test loss {means}); run the evaluation again with {more}, or `seeds: auto`."
        ]
    tied = [d for d in verdict.tied or [] if d in by_depth]
    if summary:
        text = [f"**No single winner: {summary}** (mean test loss {means})."]
    else:
        text = [f"**No single winner** (mean test loss {means})."]
    if len(tied) >= 2:
        text.append(
            f"The best depth is among {depths_phrase(tied)}: the decision rule below does not show any of them worse "
            f"than another with these seeds ({level} confidence that the set holds the best depth)."
        )
    return text


def _ranking(entries: list[DepthEntry], mean_of) -> list[tuple[int, float]]:
    scored = [(e.depth, mean_of(e)) for e in entries]
    return sorted(((d, m) for d, m in scored if finite(m)), key=lambda x: x[1])


def _fixed_sentence(comparison: Comparison, entries: list[DepthEntry]) -> str:
    """The one-fixed-setting ranking, and whether it would have changed the conclusion."""
    ranking = _ranking(entries, lambda e: e.fixed_scores.test_loss_mean if e.fixed_scores else None)
    order = ", then ".join(f"depth {d} ({_num(m)})" for d, m in ranking)
    text = (
        f"With one fixed setting for every depth ({_baseline_text(comparison.baseline)}), "
        f"the ranking by mean test loss would have been {order}"
    )
    fixed_verdict = _named(comparison.fixed_verdict)
    if fixed_verdict is not None and fixed_verdict.summary:
        text += f", and by the same rule {fixed_verdict.summary}"
    elif fixed_verdict is not None:
        if fixed_verdict.winner is not None:
            text += f", and that comparison names depth {fixed_verdict.winner} the winner"
        else:
            text += f", and that comparison calls a tie between {depths_phrase(fixed_verdict.tied or [])}"
    changed = comparison.conclusion_changed
    reasons = [r for r in comparison.conclusion_reasons or [] if isinstance(r, str)]
    because = f" ({'; '.join(reasons)})" if reasons else ""
    if changed is True:
        text += f": the conclusion changed{because}, so the usual fixed-setting comparison would have misled here."
    elif changed is False:
        text += f": the conclusion is the same{because}."
    elif reasons:
        text += f": whether the conclusion changed cannot be told yet{because}."
    else:
        text += "."
    return text


def _gain_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """How much tuning lowered each depth's test loss against the fixed setting, with its interval."""
    gains = [e for e in entries if finite(e.tuning_gain)]
    if not gains:
        return []
    level = level_text(comparison)
    shown = join([f"{_mean_ci(e.tuning_gain, e.tuning_gain_ci)} at depth {e.depth}" for e in gains])
    return [
        "",
        f"Tuning gain (the fixed setting's mean test loss minus the tuned one's, {level} Welch interval; above 0, "
        f"tuning helped): {shown}.",
    ]


# ----------------------------------------------------------------------------- markdown sections


def _trials(entry: DepthEntry) -> TrialCounts:
    return entry.trials if entry.trials is not None else TrialCounts()


def _depth_table(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    level = level_text(comparison)
    verdict = _named(comparison.verdict)
    winner = verdict.winner if verdict is not None else None
    has_test = any(e.has_test for e in entries)
    has_fixed = any(e.fixed_scores for e in entries)
    has_acc = any(finite(e.test_accuracy_mean) for e in entries)
    has_skill = any(finite(e.skill) for e in entries)
    head = ["depth", "best units", "lr", "params", "best val loss"]
    if has_test:
        head.append(f"tuned test loss, mean [{level} CI]")
    if has_skill:
        head.append("skill vs naive")
    if has_acc:
        head.append("tuned test accuracy")
    if has_fixed:
        head.append(f"fixed-setting test loss, mean [{level} CI]")
    head.append("trials completed / pruned / failed")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for e in entries:
        cfg = e.tested_config
        trials = _trials(e)
        depth = f"**{e.depth}** (winner)" if e.depth == winner else str(e.depth)
        row = [depth, _units(cfg), _lr(cfg), _int(e.params), _num(e.best_val_loss)]
        if has_test:
            failed = e.failed_runs
            note = f" ({failed} failed)" if finite(failed) and failed else ""
            row.append(_mean_ci(e.test_loss_mean, e.test_loss_ci95) + note)
        if has_skill:
            row.append(_num(e.skill, 2))
        if has_acc:
            row.append(_num(e.test_accuracy_mean))
        if has_fixed:
            f = e.fixed_scores
            row.append(_mean_ci(f.test_loss_mean, f.test_loss_ci95) if f else "–")
        counts = (trials.completed, trials.pruned, trials.failed)
        row.append(" / ".join("–" if n is None else str(n) for n in counts))
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    if any(e.evaluated_config for e in entries):
        notes.append(
            "Where a depth's tested configuration is a top-k runner-up (it did best on validation when "
            "retrained), its units and lr are shown, not the search's single best trial's."
        )
    if any(e.best_config is None for e in entries):
        notes.append("A row of dashes is a depth whose search completed no trial.")
    if notes:
        lines += ["", " ".join(notes)]
    return lines


def _call(pair: Pair) -> str:
    if pair.better is not None:
        return f"depth {pair.better} better"
    if pair.decidable is False:
        return "too few seeds to tell"
    return "not shown different"


def _pair_table(comparison: Comparison, verdict: Verdict) -> list[str]:
    level = level_text(comparison)
    pairs = verdict.pairs or []
    if not pairs:
        return []
    lines = [
        f"| A vs B | mean test loss A − B [{level} CI] | P(A beats B) [{level} CI] | p, Holm-adjusted | call |",
        "|---|---:|---:|---:|---|",
    ]
    for p in pairs:
        lines.append(
            f"| {p.a} vs {p.b} | {_mean_ci(p.difference, p.difference_ci)} | "
            f"{_prob_ci(p.p_a_better, p.p_a_better_ci)} | {_pvalue(p.p_adjusted)} | {_call(p)} |"
        )
    unit = "search of A, search of B) pairs in which A's mean" if comparison.replicates else "run of A, run of B) pairs"
    unit += " test loss is lower" if comparison.replicates else " in which A's test loss is lower"
    lines += [
        "",
        "A negative difference means A has the lower (better) test loss; "
        f"P(A beats B) is the share of ({unit}, with its "
        "Brunner-Munzel interval. This table describes every pair; the best depth is called by the comparisons "
        "with the best (the decision rule), which need less evidence than all pairs at once.",
    ]
    return lines


def _budget_section(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """What each depth was given and used: trials, training seconds, and whether time or trials was equal."""
    budget = comparison.budget
    used = [e for e in entries if finite(e.train_seconds)]
    if not used:
        return []
    spent = join([f"depth {e.depth}: {_trials(e).total} trials, {_num(e.train_seconds, 3)} s" for e in used])
    lines = ["", "## Budget", ""]
    if budget is not None and budget.kind == "seconds":
        over = join([f"{_num(e.overshoot_seconds, 2)} s at depth {e.depth}" for e in used if e.overshoot_seconds])
        lines.append(
            f"Every depth got {_num(budget.per_depth)} s of training ({spent}). A depth's last trial may run "
            "past its time" + (f": here by {over}." if over else "; none did here.")
        )
    else:
        lines.append(
            f"Every depth got the same number of trials ({spent}). Equal trials are not equal time: a deeper stack's "
            "trials take longer, so compare the training seconds too, or give each depth the same time with "
            "`budget: {kind: seconds, per_depth: N}`."
        )
    if comparison.curves:
        lines += ["", comparison.curves]
    return lines


def _baseline_section(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """The naive forecasts (or the majority class) on the same test split, and each depth's skill against the best."""
    baselines = [b for b in comparison.baselines or [] if finite(b.loss)]
    best = comparison.best_baseline
    if best is None:
        return []
    lines = ["", "## Against a naive forecast", ""]
    lines += ["| naive baseline | test loss | what it predicts |", "|---|---:|---|"]
    for b in baselines:
        extra = f"; accuracy {_num(b.accuracy, 3)}" if finite(b.accuracy) else ""
        lines.append(f"| {b.name} | {_num(b.loss)} | {b.description}{extra} |")
    if len(comparison.origins or []) > 1:
        lines += [
            "",
            f"Each naive forecast was scored at the same {len(comparison.origins)} data origins as the depths; its "
            "loss is over all of their test windows (each origin's best is in the data origins section).",
        ]
    skills = [(e.depth, e.skill) for e in entries if finite(e.skill)]
    if skills:
        shown = join([f"{_num(v, 2)} for depth {d}" for d, v in skills])
        lines += [
            "",
            f"Skill is 1 − (a depth's mean test loss / the {best.name}'s): above 0 beats it, "
            f"0 matches it, below 0 does worse. Here: {shown}.",
        ]
    return lines


def _warning_section(comparison: Comparison) -> list[str]:
    warnings = [w for w in comparison.warnings or [] if w.sentence]
    if not warnings:
        return []
    lines = ["", "## Warnings", ""]
    lines += [f"- `{w.code}`: {w.sentence}" for w in warnings]
    return lines


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
            f"- Fixed setting: every depth was also trained with {_baseline_text(comparison.baseline)}, on the "
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
                f"| {entry.depth} | {found.replicate} | {_num(found.best_val_loss)} | {_units(cfg)} | {_lr(cfg)} | "
                f"{_num(found.test_loss_mean)} |"
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
        return "the search's split" if origin.number == 1 else f"validation drawn with seed {_int(origin.seed)}"
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
        naive_text = f"{_num(naive.get('loss'))} ({str(naive.get('kind', '')).replace('_', ' ')})" if naive else "—"
        cells = " | ".join(_num(means.get(d)) for d in shown)
        lines.append(
            f"| {origin.number} | {_origin_where(origin)} | {_int(origin.sizes.get('test'))} | {naive_text} | "
            f"{cells} | {_int(origin.leader) if origin.leader is not None else '—'} |"
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


def _importance_lines(entries: list[DepthEntry]) -> list[str]:
    methods = importance_methods(entries)
    lines = []
    for e in entries:
        importance = e.importance
        if not isinstance(importance, dict):
            continue
        top = sorted(((k, v) for k, v in importance.items() if finite(v)), key=lambda kv: -kv[1])[:2]
        if top:
            parts = [f"{param_label(k)} (`{k}`, {_num(v, 2)})" for k, v in top]
            # Depths measured differently (a comparison.json put together by hand) say which method is theirs.
            method = f" (by {e.importance_method or 'an unrecorded method'})" if len(methods) > 1 else ""
            lines.append(f"- Depth {e.depth}: {join(parts)}{method}.")
    if lines:
        meanings = " ".join(importance_meaning(m) for m in methods)
        lines += ["", f"{meanings} A depth's importances sum to 1."]
    return lines


def _reproduce_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    lines = ["From the search's output folder (the one holding `comparison.json` and `best/`):", "", "```"]
    ranked = [e for e in entries if e.best_config is not None]
    for e in ranked:
        lines.append(f"stacktune train best/depth-{e.depth}.yaml")
    lines.append("```")
    if not ranked:
        return ["No depth completed a trial, so there is no configuration to retrain."]
    traces = []
    for e in ranked:
        trial = e.best_trial
        if trial is not None and trial.name:
            run = f", MLflow run `{trial.mlflow_run_id}`" if trial.mlflow_run_id else ""
            traces.append(f"depth {e.depth}: trial `{trial.name}`{run}")
    if traces:
        lines += ["", "Each file is that depth's best search trial (" + "; ".join(traces) + ")."]
    if comparison.experiment_id is not None:
        lines.append(
            f"Everything is logged in MLflow experiment `{comparison.experiment_id}`"
            + (f", search run `{comparison.mlflow_run_id}`." if comparison.mlflow_run_id else ".")
        )
    return lines


def _model_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """Each depth's best trial as an MLflow Model: its URI and the test loss of those very weights."""
    models = [(e, e.model) for e in entries if e.model is not None]
    if not models:
        return []
    lines = [
        "",
        "## The models",
        "",
        "Each depth's best trial is logged as an MLflow Model, a pyfunc that takes input windows in the data's own "
        "units and answers in them: `mlflow.pyfunc.load_model(URI).predict(x)`. Its test loss is that of its very "
        "weights (the results above are of retrainings over seeds).",
        "",
        "| depth | model URI | its test loss |",
        "| ---: | --- | ---: |",
    ]
    for e, model in models:
        mark = " (overall best)" if e.depth == comparison.best_depth else ""
        lines.append(f"| {e.depth}{mark} | `{model.uri}` | {_num(model.test_loss)} |")
    return lines


def _markdown(comparison: Comparison, entries: list[DepthEntry], plots: list[str]) -> str:
    name = comparison.search or "search"
    level = level_text(comparison)
    out = [f"# Does stacking more LSTM layers help? Search `{name}`", ""]
    out += [" ".join(_answer(comparison, entries)), ""]
    task = "classification" if comparison.task == "classification" else "regression"
    trials = comparison.trials_per_depth
    depths = [str(e.depth) for e in entries]
    out.append(
        f"Data: {_dataset_text(comparison.dataset)}, task {task} "
        f"(losses are {'cross-entropy' if task == 'classification' else 'mean squared error on standardised targets'}, "
        f"lower is better). Depths compared: {', '.join(depths) or 'none'}; each got its own Optuna study"
        + (f" of {trials} trials" if trials else "")
        + (
            f", {comparison.replicates} times over (independent searches)."
            if comparison.replicates and comparison.replicates > 1
            else "."
        )
    )
    out += ["", "## Results by depth", ""]
    out += _depth_table(comparison, entries)

    verdict = _named(comparison.verdict)
    if verdict is not None:
        pair_lines = _pair_table(comparison, verdict)
        if pair_lines:
            out += ["", "## Pairwise comparisons (tuned)", ""] + pair_lines
        if verdict.rule:
            out += ["", f"**Decision rule.** {verdict.rule}"]

    if any(e.fixed_scores for e in entries):
        out += ["", "## Tuned versus one fixed setting", "", _fixed_sentence(comparison, entries)]
        out += _gain_lines(comparison, entries)
        fixed_verdict = _named(comparison.fixed_verdict)
        if fixed_verdict is not None:
            pair_lines = _pair_table(comparison, fixed_verdict)
            if pair_lines:
                out += ["", "Pairwise, with the fixed setting:", ""] + pair_lines[:-2]

    out += _budget_section(comparison, entries)
    out += _baseline_section(comparison, entries)
    out += _warning_section(comparison)
    out += ["", "## How the depths were evaluated", ""] + _evaluation_lines(comparison, entries)
    out += _replicate_lines(comparison, entries)
    out += _origin_lines(comparison, entries)
    out += _coverage_lines(comparison)

    if plots:
        out += ["", "## Plots"]
        for filename in plots:
            alt, read = CAPTIONS[filename]
            out += ["", f"![{alt}]({filename})", "", read.format(level=level)]

    importance = _importance_lines(entries)
    if importance:
        out += [
            "",
            "## What mattered at each depth",
            "",
            "The two most important hyperparameters of each depth's search:",
            "",
        ]
        out += importance

    out += _model_lines(comparison, entries)
    out += ["", "## How to reproduce", ""] + _reproduce_lines(comparison, entries)
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- entry point


def write_report(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Writes out_dir/report.md and the plots that have data; returns the written paths, report.md first.

    Previous report files are overwritten, and a plot left over from an earlier report whose data is
    now missing is removed, so report.md never sits beside a stale figure.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = draw_plots(comparison, out_dir)
    report = out_dir / "report.md"
    entries = sorted(comparison.depths, key=lambda e: e.depth)
    report.write_text(_markdown(comparison, entries, [p.name for p in written]), encoding="utf-8")
    return [report, *written]
