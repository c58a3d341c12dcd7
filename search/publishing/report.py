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
from ..verdict.wording import join
from .answer import answer, fixed_sentence, gain_lines
from .formats import dataset_text, integer, lr_text, mean_ci, named, num, prob_ci, pvalue, units_text
from .method import method_sections
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
    out += method_sections(comparison, entries)

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
