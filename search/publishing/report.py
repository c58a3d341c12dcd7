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

from ..verdict.comparison import (
    Comparison,
    DepthEntry,
    Pair,
    TrialCounts,
    Verdict,
    finite,
)
from ..verdict.wording import depths_phrase, join
from .answer import answer, fixed_sentence, gain_lines
from .formats import baseline_text, dataset_text, integer, lr_text, mean_ci, named, num, prob_ci, pvalue, units_text
from .plots import PLOT_FILES, draw_plots
from .words import CAPTIONS, importance_meaning, importance_methods, level_text, param_label

__all__ = ["write_report", "PLOT_FILES"]


# ----------------------------------------------------------------------------- markdown sections


def _trials(entry: DepthEntry) -> TrialCounts:
    return entry.trials if entry.trials is not None else TrialCounts()


def _depth_table(comparison: Comparison, entries: list[DepthEntry]) -> list[str]:
    level = level_text(comparison)
    verdict = named(comparison.verdict)
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
        row = [depth, units_text(cfg), lr_text(cfg), integer(e.params), num(e.best_val_loss)]
        if has_test:
            failed = e.failed_runs
            note = f" ({failed} failed)" if finite(failed) and failed else ""
            row.append(mean_ci(e.test_loss_mean, e.test_loss_ci95) + note)
        if has_skill:
            row.append(num(e.skill, 2))
        if has_acc:
            row.append(num(e.test_accuracy_mean))
        if has_fixed:
            f = e.fixed_scores
            row.append(mean_ci(f.test_loss_mean, f.test_loss_ci95) if f else "–")
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
            f"| {p.a} vs {p.b} | {mean_ci(p.difference, p.difference_ci)} | "
            f"{prob_ci(p.p_a_better, p.p_a_better_ci)} | {pvalue(p.p_adjusted)} | {_call(p)} |"
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
    spent = join([f"depth {e.depth}: {_trials(e).total} trials, {num(e.train_seconds, 3)} s" for e in used])
    lines = ["", "## Budget", ""]
    if budget is not None and budget.kind == "seconds":
        over = join([f"{num(e.overshoot_seconds, 2)} s at depth {e.depth}" for e in used if e.overshoot_seconds])
        lines.append(
            f"Every depth got {num(budget.per_depth)} s of training ({spent}). A depth's last trial may run "
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
        extra = f"; accuracy {num(b.accuracy, 3)}" if finite(b.accuracy) else ""
        lines.append(f"| {b.name} | {num(b.loss)} | {b.description}{extra} |")
    if len(comparison.origins or []) > 1:
        lines += [
            "",
            f"Each naive forecast was scored at the same {len(comparison.origins)} data origins as the depths; its "
            "loss is over all of their test windows (each origin's best is in the data origins section).",
        ]
    skills = [(e.depth, e.skill) for e in entries if finite(e.skill)]
    if skills:
        shown = join([f"{num(v, 2)} for depth {d}" for d, v in skills])
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


def _importance_lines(entries: list[DepthEntry]) -> list[str]:
    methods = importance_methods(entries)
    lines = []
    for e in entries:
        importance = e.importance
        if not isinstance(importance, dict):
            continue
        top = sorted(((k, v) for k, v in importance.items() if finite(v)), key=lambda kv: -kv[1])[:2]
        if top:
            parts = [f"{param_label(k)} (`{k}`, {num(v, 2)})" for k, v in top]
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
        lines.append(f"| {e.depth}{mark} | `{model.uri}` | {num(model.test_loss)} |")
    return lines


def _markdown(comparison: Comparison, entries: list[DepthEntry], plots: list[str]) -> str:
    name = comparison.search or "search"
    level = level_text(comparison)
    out = [f"# Does stacking more LSTM layers help? Search `{name}`", ""]
    out += [" ".join(answer(comparison, entries)), ""]
    task = "classification" if comparison.task == "classification" else "regression"
    trials = comparison.trials_per_depth
    depths = [str(e.depth) for e in entries]
    out.append(
        f"Data: {dataset_text(comparison.dataset)}, task {task} "
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

    verdict = named(comparison.verdict)
    if verdict is not None:
        pair_lines = _pair_table(comparison, verdict)
        if pair_lines:
            out += ["", "## Pairwise comparisons (tuned)", ""] + pair_lines
        if verdict.rule:
            out += ["", f"**Decision rule.** {verdict.rule}"]

    if any(e.fixed_scores for e in entries):
        out += ["", "## Tuned versus one fixed setting", "", fixed_sentence(comparison, entries)]
        out += gain_lines(comparison, entries)
        fixed_verdict = named(comparison.fixed_verdict)
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
