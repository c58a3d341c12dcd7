"""The report's written answer: who wins (or the tie, or that the seeds cannot tell), how sure, and what the naive
forecast and the one fixed setting would have said, in sentences."""

from __future__ import annotations

from ..verdict.comparison import Comparison, DepthEntry, Verdict, finite
from ..verdict.wording import depths_phrase, join
from .formats import baseline_text, budget_phrase, mean_ci, named, num, p_clause, prob, prose_ci
from .words import level_text


def answer(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """A few sentences: who wins (or the tie, or that the seeds cannot tell), how sure, what the naive forecast and
    the fixed setting would have said."""
    verdict = named(comparison.verdict)
    tested = [e for e in entries if e.has_test]
    if verdict is not None and tested:
        sentences = [f"**{comparison.headline}**"] if comparison.headline else []
        sentences += _verdict_sentences(comparison, verdict, tested)
        sentences += _trend_sentences(verdict)
        sentences += _naive_sentences(comparison, tested)
        conclusion = comparison.conclusion
        tuning = comparison.tuning
        fixed_verdict = named(comparison.fixed_verdict)
        if tuning is not None and tuning.sentence and fixed_verdict is not None and fixed_verdict.summary:
            # The tuned verdict is said above: only the fixed setting's side of the conclusion follows.
            sentences.append(
                f"With one fixed setting ({baseline_text(comparison.baseline)}), {fixed_verdict.summary}: "
                f"{tuning.sentence}"
            )
        elif isinstance(conclusion, str) and conclusion.strip():
            sentences.append(conclusion.strip())
        elif fixed_verdict is not None:
            sentences.append(fixed_sentence(comparison, entries))
        return sentences
    budget = budget_phrase(comparison.trials_per_depth)
    sentences = []
    ranked = [e for e in entries if finite(e.best_val_loss)]
    if not ranked:
        return ["No depth completed a trial, so there is nothing to compare yet; see the trial counts below."]
    ranked.sort(key=lambda e: e.best_val_loss)
    best = ranked[0]
    text = f"By validation loss alone, depth {best.depth}'s best trial scored lowest ({num(best.best_val_loss)}"
    if len(ranked) > 1:
        text += f" against {num(ranked[1].best_val_loss)} for depth {ranked[1].depth}, the runner-up"
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
    skills = join([f"{num(e.skill, 2)} at depth {e.depth}" for e in losing])
    verb = "does" if len(losing) == 1 else "do"
    return [
        f"{depths_phrase(e.depth for e in losing).capitalize()} {verb} no better than the naive "
        f"{best.name} forecast (test loss {num(best.loss)}; skill {skills})."
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
    budget = budget_phrase(comparison.trials_per_depth, searches)
    winner = verdict.winner
    summary = verdict.summary or ""
    if winner is not None and len(tested) == 1:
        e = by_depth[winner] if winner in by_depth else tested[0]
        return [
            f"Only depth {winner} could be evaluated on the held-out test split "
            f"(mean test loss {prose_ci(e.test_loss_mean, e.test_loss_ci95, level)}{seeds}), "
            "so there is nothing to compare it with."
        ]
    pairs = verdict.pairs or []
    if winner is not None:
        e = by_depth[winner] if winner in by_depth else None
        mean, ci = (e.test_loss_mean, e.test_loss_ci95) if e is not None else (None, None)
        text = [
            f"**Depth {winner} wins**: tuned with {budget}, its best configuration has the lowest "
            f"mean test loss, {prose_ci(mean, ci, level)}{seeds}, "
            "and the decision rule below shows it better than every other depth."
        ]
        duels = [p for p in pairs if winner in (p.a, p.b) and finite(p.p_adjusted)]
        if duels:
            closest = max(duels, key=lambda p: p.p_adjusted)
            rival = closest.rival(winner)
            text.append(
                f"The closest call is depth {rival}: P(depth {winner} beats depth {rival}) = "
                f"{prob(closest.p_beats(winner))}, {p_clause(closest.p_adjusted)}."
            )
        return text
    means = join([f"{num(by_depth[d].test_loss_mean)} for depth {d}" for d in sorted(by_depth)])
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


def fixed_sentence(comparison: Comparison, entries: list[DepthEntry]) -> str:
    """The one-fixed-setting ranking, and whether it would have changed the conclusion."""
    ranking = _ranking(entries, lambda e: e.fixed_scores.test_loss_mean if e.fixed_scores else None)
    order = ", then ".join(f"depth {d} ({num(m)})" for d, m in ranking)
    text = (
        f"With one fixed setting for every depth ({baseline_text(comparison.baseline)}), "
        f"the ranking by mean test loss would have been {order}"
    )
    fixed_verdict = named(comparison.fixed_verdict)
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


def gain_lines(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    """How much tuning lowered each depth's test loss against the fixed setting, with its interval."""
    gains = [e for e in entries if finite(e.tuning_gain)]
    if not gains:
        return []
    level = level_text(comparison)
    shown = join([f"{mean_ci(e.tuning_gain, e.tuning_gain_ci)} at depth {e.depth}" for e in gains])
    return [
        "",
        f"Tuning gain (the fixed setting's mean test loss minus the tuned one's, {level} Welch interval; above 0, "
        f"tuning helped): {shown}.",
    ]
