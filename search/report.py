"""A finished search as a readable report: report.md plus a few plots, from comparison.json alone.

The report answers "does stacking more layers help on my data?": the verdict with its
uncertainty, how it compares with the usual one-fixed-setting comparison, the tables behind
it, how the test numbers were produced and how to retrain any depth. Every field of
comparison.json that evaluation or the baseline would fill may be absent or null; the report
then says what it can from what is there and leaves out the plots that have no data.

matplotlib is imported lazily (inside the plotting functions), so importing this module is cheap.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["write_report", "PLOT_FILES"]

# The plots this module may write, in the order they appear in the report.
PLOT_FILES = ("test_loss_by_depth.png", "expected_best.png", "val_curves.png", "importance.png")

_DPI = 110
_SIZE = (7.0, 4.0)
_TUNED_COLOUR = "#1f77b4"
_FIXED_COLOUR = "#7f7f7f"
_WINNER_COLOUR = "#f2c14e"


# ----------------------------------------------------------------------------- small helpers


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; '–' for missing or non-finite values."""
    if not _finite(value):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def _int(value: Any) -> str:
    return f"{int(value):,}" if _finite(value) else "–"


def _interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _mean_ci(mean: Any, ci: Any) -> str:
    """'0.2100 [0.1900, 0.2300]' style: the mean, then its interval when there is one."""
    if not _finite(mean):
        return "–"
    bounds = _interval(ci)
    if bounds is None:
        return _num(mean)
    return f"{_num(mean)} [{_num(bounds[0])}, {_num(bounds[1])}]"


def _values(seq: Any) -> list[float]:
    """The finite numbers of a list (None, NaN and non-numbers dropped)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) for v in seq if _finite(v)]


def _series(seq: Any) -> list[float]:
    """A list as floats with NaN standing in for missing entries (keeps positions for plotting)."""
    if not isinstance(seq, (list, tuple)):
        return []
    return [float(v) if _finite(v) else float("nan") for v in seq]


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _depths_phrase(depths: Iterable[int]) -> str:
    depths = list(depths)
    return ("depth " if len(depths) == 1 else "depths ") + _join([str(d) for d in depths])


def _entries(comparison: dict) -> list[dict]:
    return sorted(
        (d for d in comparison.get("depths") or [] if isinstance(d, dict) and "depth" in d),
        key=lambda d: d["depth"],
    )


def _task(comparison: dict) -> str:
    return "classification" if comparison.get("task") == "classification" else "regression"


def _loss_unit(comparison: dict) -> str:
    return "cross-entropy" if _task(comparison) == "classification" else "MSE, standardised"


def _confidence(comparison: dict) -> float:
    evaluation = comparison.get("evaluation") or {}
    conf = evaluation.get("confidence") if isinstance(evaluation, dict) else None
    return float(conf) if _finite(conf) and 0 < conf < 1 else 0.95


def _level(comparison: dict) -> str:
    return f"{_confidence(comparison) * 100:g}%"


def _tested_config(entry: dict) -> dict | None:
    """The tuned configuration whose test scores the entry carries (a top-k runner-up may stand in)."""
    cfg = entry.get("evaluated_config") or entry.get("best_config")
    return cfg if isinstance(cfg, dict) else None


def _units(cfg: dict | None) -> str:
    units = ((cfg or {}).get("model") or {}).get("units")
    if not isinstance(units, list) or not units:
        return "–"
    return "[" + ", ".join(str(u) for u in units) + "]"


def _lr(cfg: dict | None) -> str:
    return _num(((cfg or {}).get("train") or {}).get("lr"))


def _has_test(entry: dict) -> bool:
    return _finite(entry.get("test_loss_mean"))


def _fixed(entry: dict) -> dict | None:
    fixed = entry.get("fixed")
    return fixed if isinstance(fixed, dict) and _finite(fixed.get("test_loss_mean")) else None


def _verdict(comparison: dict, key: str = "verdict") -> dict | None:
    verdict = comparison.get(key)
    if not isinstance(verdict, dict) or not (verdict.get("winner") is not None or verdict.get("tied")):
        return None
    return verdict


def _p_beats(pair: dict, depth: int) -> tuple[float, tuple[float, float] | None] | None:
    """P(`depth` beats the other depth of `pair`) and its interval, flipped when `depth` is the pair's b."""
    p = pair.get("p_a_better")
    if not _finite(p):
        return None
    ci = _interval(pair.get("p_a_better_ci"))
    if pair.get("a") == depth:
        return float(p), ci
    return 1.0 - float(p), (None if ci is None else (1.0 - ci[1], 1.0 - ci[0]))


def _prob(value: Any) -> str:
    return f"{value:.2f}" if _finite(value) else "–"


def _prob_text(p: float, ci: tuple[float, float] | None, level: str) -> str:
    return _prob(p) + ("" if ci is None else f" ({level} CI {_prob(ci[0])}–{_prob(ci[1])})")


def _prose_ci(mean: Any, ci: Any, level: str) -> str:
    """'0.2108 (95% CI 0.203–0.2184)' for running text."""
    bounds = _interval(ci)
    if bounds is None:
        return _num(mean)
    return f"{_num(mean)} ({level} CI {_num(bounds[0])}–{_num(bounds[1])})"


def _param_label(name: str) -> str:
    if name.startswith("units_") and name[6:].isdigit():
        return f"units, layer {int(name[6:]) + 1}"
    return {
        "lr": "learning rate",
        "dropout": "dropout",
        "weight_decay": "weight decay",
        "batch_size": "batch size",
    }.get(name, name.replace("_", " "))


def _dataset_text(dataset: Any) -> str:
    if not isinstance(dataset, dict):
        return "the dataset"
    name = dataset.get("name") or (Path(str(dataset["csv"])).name if dataset.get("csv") else None) or "the dataset"
    extras = [f"{k} {dataset[k]}" for k in ("window", "horizon") if dataset.get(k) is not None]
    return f"`{name}`" + (f" ({', '.join(extras)})" if extras else "")


def _baseline_text(baseline: Any) -> str:
    if not isinstance(baseline, dict):
        return "one fixed setting"
    parts = []
    if baseline.get("units") is not None:
        parts.append(f"{baseline['units']} units per layer")
    if baseline.get("lr") is not None:
        parts.append(f"lr {_num(baseline['lr'])}")
    if baseline.get("dropout") is not None:
        parts.append(f"dropout {_num(baseline['dropout'])}")
    if baseline.get("batch_size") is not None:
        parts.append(f"batch size {baseline['batch_size']}")
    return ", ".join(parts) if parts else "one fixed setting"


# ----------------------------------------------------------------------------- the written answer


def _answer(comparison: dict, entries: list[dict]) -> list[str]:
    """Two or three sentences: who wins (or the tie), how sure, and what the fixed setting would have said."""
    level = _level(comparison)
    verdict = _verdict(comparison)
    tested = [e for e in entries if _has_test(e)]
    trials = comparison.get("trials_per_depth")
    budget = f"the same budget ({trials} trials per depth)" if trials else "the same budget"
    sentences: list[str] = []

    if verdict is not None and tested:
        by_depth = {e["depth"]: e for e in tested}
        pairs = [p for p in verdict.get("pairs") or [] if isinstance(p, dict)]
        n_seeds = max(len(_values(e.get("test_losses"))) for e in tested)
        seeds = f" over {n_seeds} seeds" if n_seeds else ""
        winner = verdict.get("winner")
        tied = [d for d in verdict.get("tied") or [] if d in by_depth] or list(verdict.get("tied") or [])
        if winner is not None and len(tested) == 1:
            e = by_depth.get(winner, tested[0])
            sentences.append(
                f"Only depth {winner} could be evaluated on the held-out test split "
                f"(mean test loss {_prose_ci(e.get('test_loss_mean'), e.get('test_loss_ci95'), level)}{seeds}), "
                "so there is nothing to compare it with."
            )
        elif winner is not None:
            e = by_depth.get(winner, {})
            sentences.append(
                f"**Depth {winner} wins**: tuned with {budget}, its best configuration has the lowest "
                f"mean test loss, {_prose_ci(e.get('test_loss_mean'), e.get('test_loss_ci95'), level)}{seeds}."
            )
            duels = [(p, _p_beats(p, winner)) for p in pairs if winner in (p.get("a"), p.get("b"))]
            duels = [(p, pb) for p, pb in duels if pb is not None]
            if duels:
                pair, (prob, ci) = min(
                    duels,
                    key=lambda x: (x[1][0], x[1][1][0] if x[1][1] else x[1][0], abs(x[0].get("difference") or 0.0)),
                )
                rival = pair["b"] if pair.get("a") == winner else pair["a"]
                sentences.append(
                    f"It beats every other depth by the decision rule below; the closest call is depth {rival}, "
                    f"with P(depth {winner} beats depth {rival}) = {_prob_text(prob, ci, level)}."
                )
        elif len(tied) >= 2:
            means = _join([f"{_num(by_depth[d].get('test_loss_mean'))} for depth {d}" for d in tied if d in by_depth])
            sentences.append(
                f"**It's a tie: {_depths_phrase(tied)}** cannot be told apart on the held-out test split "
                f"(mean test loss {means}), and no other depth beats them."
            )
            close = [p for p in pairs if p.get("a") in tied and p.get("b") in tied and _finite(p.get("p_a_better"))]
            if close:
                pair = close[0]
                prob, ci = _p_beats(pair, pair["a"])
                sentences.append(
                    f"P(depth {pair['a']} beats depth {pair['b']}) = {_prob_text(prob, ci, level)} is too close to "
                    f"call by the decision rule below: stacking beyond depth {min(tied)} does not clearly help."
                )
        else:
            lead = tied[0] if tied else min(tested, key=lambda e: e["test_loss_mean"])["depth"]
            unbeaten = [
                (p["b"] if p.get("a") == lead else p["a"])
                for p in pairs
                if lead in (p.get("a"), p.get("b")) and p.get("better") is None
            ]
            sentences.append(
                f"**No clear winner (a tie for practical purposes):** no depth beats depth {lead}, but it does "
                f"not clearly beat {_depths_phrase(unbeaten) if unbeaten else 'every other depth'} either."
            )
        conclusion = comparison.get("conclusion")
        if isinstance(conclusion, str) and conclusion.strip():
            sentences.append(conclusion.strip())
        elif _verdict(comparison, "fixed_verdict") is not None:
            sentences.append(_fixed_sentence(comparison, entries))
        return sentences

    ranked = [e for e in entries if _finite(e.get("best_val_loss"))]
    if not ranked:
        return ["No depth completed a trial, so there is nothing to compare yet; see the trial counts below."]
    ranked.sort(key=lambda e: e["best_val_loss"])
    best = ranked[0]
    text = f"By validation loss alone, depth {best['depth']}'s best trial scored lowest ({_num(best['best_val_loss'])}"
    if len(ranked) > 1:
        text += f" against {_num(ranked[1]['best_val_loss'])} for depth {ranked[1]['depth']}, the runner-up"
    sentences.append(text + f"), each depth searched with {budget}.")
    sentences.append(
        "There is no verdict with uncertainty: evaluation on the held-out test split was off, and the best of "
        "many trials on the validation split is an optimistic, single-seed number; turn evaluation on to "
        "retrain each depth over several seeds and get one."
    )
    return sentences


def _ranking(entries: list[dict], mean_of) -> list[tuple[int, float]]:
    scored = [(e["depth"], mean_of(e)) for e in entries]
    return sorted(((d, m) for d, m in scored if _finite(m)), key=lambda x: x[1])


def _fixed_sentence(comparison: dict, entries: list[dict]) -> str:
    """The one-fixed-setting ranking, and whether it would have changed the conclusion."""
    ranking = _ranking(entries, lambda e: (_fixed(e) or {}).get("test_loss_mean"))
    order = ", then ".join(f"depth {d} ({_num(m)})" for d, m in ranking)
    text = (
        f"With one fixed setting for every depth ({_baseline_text(comparison.get('baseline'))}), "
        f"the ranking by mean test loss would have been {order}"
    )
    fixed_verdict = _verdict(comparison, "fixed_verdict")
    if fixed_verdict is not None:
        if fixed_verdict.get("winner") is not None:
            text += f", and that comparison names depth {fixed_verdict['winner']} the winner"
        else:
            text += f", and that comparison calls a tie between {_depths_phrase(fixed_verdict.get('tied') or [])}"
    changed = comparison.get("conclusion_changed")
    if changed is True:
        text += ": the conclusion changed, so the usual fixed-setting comparison would have misled here."
    elif changed is False:
        text += ": the conclusion did not change."
    else:
        text += "."
    return text


# ----------------------------------------------------------------------------- markdown sections


def _depth_table(comparison: dict, entries: list[dict]) -> list[str]:
    level = _level(comparison)
    verdict = _verdict(comparison) or {}
    winner = verdict.get("winner")
    has_test = any(_has_test(e) for e in entries)
    has_fixed = any(_fixed(e) for e in entries)
    has_acc = any(_finite(e.get("test_accuracy_mean")) for e in entries)
    head = ["depth", "best units", "lr", "params", "best val loss"]
    if has_test:
        head.append(f"tuned test loss, mean [{level} CI]")
    if has_acc:
        head.append("tuned test accuracy")
    if has_fixed:
        head.append(f"fixed-setting test loss, mean [{level} CI]")
    head.append("trials completed / pruned / failed")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for e in entries:
        cfg = _tested_config(e)
        trials = e.get("trials") or {}
        depth = f"**{e['depth']}** (winner)" if e["depth"] == winner else str(e["depth"])
        row = [depth, _units(cfg), _lr(cfg), _int(e.get("params")), _num(e.get("best_val_loss"))]
        if has_test:
            row.append(_mean_ci(e.get("test_loss_mean"), e.get("test_loss_ci95")))
        if has_acc:
            row.append(_num(e.get("test_accuracy_mean")))
        if has_fixed:
            f = _fixed(e)
            row.append(_mean_ci(f.get("test_loss_mean"), f.get("test_loss_ci95")) if f else "–")
        row.append(" / ".join(str(trials.get(k, "–")) for k in ("completed", "pruned", "failed")))
        lines.append("| " + " | ".join(row) + " |")
    notes = []
    if any(e.get("evaluated_config") for e in entries):
        notes.append(
            "Where a depth's tested configuration is a top-k runner-up (it did best on validation when "
            "retrained), its units and lr are shown, not the search's single best trial's."
        )
    if any(e.get("best_config") is None for e in entries):
        notes.append("A row of dashes is a depth whose search completed no trial.")
    if notes:
        lines += ["", " ".join(notes)]
    return lines


def _prob_table(p: Any, ci: Any) -> str:
    bounds = _interval(ci)
    return _prob(p) + ("" if bounds is None or not _finite(p) else f" [{_prob(bounds[0])}, {_prob(bounds[1])}]")


def _pair_table(comparison: dict, verdict: dict) -> list[str]:
    level = _level(comparison)
    pairs = [p for p in verdict.get("pairs") or [] if isinstance(p, dict)]
    if not pairs:
        return []
    lines = [
        f"| A vs B | mean test loss A − B [{level} CI] | P(A beats B) [{level} CI] | call |",
        "|---|---:|---:|---|",
    ]
    for p in pairs:
        a, b = p.get("a"), p.get("b")
        better = p.get("better")
        call = f"depth {better} better" if better is not None else "too close to call"
        lines.append(
            f"| {a} vs {b} | {_mean_ci(p.get('difference'), p.get('difference_ci'))} | "
            f"{_prob_table(p.get('p_a_better'), p.get('p_a_better_ci'))} | {call} |"
        )
    lines += ["", "A negative difference means A has the lower (better) test loss; P(A beats B) is the chance a run of A has a lower test loss than a run of B."]
    return lines


def _evaluation_lines(comparison: dict, entries: list[dict]) -> list[str]:
    evaluation = comparison.get("evaluation")
    if not isinstance(evaluation, dict):
        return [
            "Evaluation was off: no depth was retrained or scored on the held-out test split. The numbers above are "
            "validation losses of each depth's best search trial (one seed each)."
        ]
    seeds = evaluation.get("seeds")
    seed_list = seeds if isinstance(seeds, list) else next((e.get("seeds") for e in entries if e.get("seeds")), None)
    level = _level(comparison)
    lines = []
    if seed_list:
        lines.append(f"- Seeds: {', '.join(str(s) for s in seed_list)} ({len(seed_list)} runs per configuration; these differ from the search's seeds).")
    elif _finite(seeds):
        lines.append(f"- Seeds: {int(seeds)} runs per configuration.")
    refit = evaluation.get("refit", "train")
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
    top_k = evaluation.get("top_k", 1)
    if _finite(top_k) and top_k > 1:
        lines.append(
            f"- Top-k = {int(top_k)}: each depth's {int(top_k)} best configurations by validation loss were retrained; "
            "the one with the lowest mean validation loss over the seeds represents the depth on test."
        )
    else:
        lines.append("- Top-k = 1: each depth is represented by its single best configuration from the search.")
    if isinstance(comparison.get("baseline"), dict):
        lines.append(
            f"- Fixed setting: every depth was also trained with {_baseline_text(comparison['baseline'])}, on the "
            "same seeds and splits, as in the usual untuned comparison."
        )
    lines.append(f"- Intervals are {level} percentile-bootstrap intervals over the seeds.")
    return lines


def _importance_lines(entries: list[dict]) -> list[str]:
    lines = []
    for e in entries:
        importance = e.get("importance")
        if not isinstance(importance, dict):
            continue
        top = sorted(((k, v) for k, v in importance.items() if _finite(v)), key=lambda kv: -kv[1])[:2]
        if top:
            parts = [f"{_param_label(k)} (`{k}`, {_num(v, 2)})" for k, v in top]
            lines.append(f"- Depth {e['depth']}: {_join(parts)}.")
    if lines:
        lines += [
            "",
            "Importance is Optuna's fANOVA estimate over each depth's completed trials: the share of the spread "
            "in validation loss a parameter explains (the shares of a depth sum to 1).",
        ]
    return lines


def _reproduce_lines(comparison: dict, entries: list[dict]) -> list[str]:
    lines = ["From the search's output folder (the one holding `comparison.json` and `best/`):", "", "```"]
    ranked = [e for e in entries if e.get("best_config") is not None]
    for e in ranked:
        lines.append(f"stacktune train best/depth-{e['depth']}.yaml")
    lines.append("```")
    if not ranked:
        return ["No depth completed a trial, so there is no configuration to retrain."]
    traces = []
    for e in ranked:
        trial = e.get("best_trial") or {}
        if trial.get("name"):
            run = f", MLflow run `{trial['mlflow_run_id']}`" if trial.get("mlflow_run_id") else ""
            traces.append(f"depth {e['depth']}: trial `{trial['name']}`{run}")
    if traces:
        lines += ["", "Each file is that depth's best search trial (" + "; ".join(traces) + ")."]
    if comparison.get("experiment_id") is not None:
        lines.append(
            f"Everything is logged in MLflow experiment `{comparison['experiment_id']}`"
            + (f", search run `{comparison['mlflow_run_id']}`." if comparison.get("mlflow_run_id") else ".")
        )
    return lines


_READ = {
    "test_loss_by_depth.png": (
        "Test loss by depth",
        "How to read it: lower is better; each marker is a depth's mean test loss over the seeds with its {level} "
        "interval, faint dots are single seeds, blue is tuned per depth and grey is the one fixed setting; the "
        "shaded column marks the winner (or the depths tied for first).",
    ),
    "expected_best.png": (
        "Expected best validation loss versus trials",
        "How to read it: the expected best validation loss if a depth had been given only n trials (Dodge et al. "
        "2019), with a ±1 std band; a curve still falling at the right edge means that depth would likely gain from "
        "a larger budget, and curves that cross mean the ranking depends on the budget.",
    ),
    "val_curves.png": (
        "Validation loss per epoch of each depth's best trial",
        "How to read it: the validation loss of each depth's best search trial after every epoch; a curve that "
        "turns up at the end is overfitting, one still falling could use more epochs.",
    ),
    "importance.png": (
        "Hyperparameter importance by depth",
        "How to read it: the longer the bar, the more that parameter explained the spread in validation loss "
        "among a depth's trials; each depth's bars (one colour) sum to 1, so read a colour top to bottom to see "
        "what mattered at that depth.",
    ),
}


def _markdown(comparison: dict, entries: list[dict], plots: list[str]) -> str:
    name = comparison.get("search") or "search"
    level = _level(comparison)
    out = [f"# Does stacking more LSTM layers help? Search `{name}`", ""]
    out += [" ".join(_answer(comparison, entries)), ""]
    task = _task(comparison)
    trials = comparison.get("trials_per_depth")
    depths = [str(e["depth"]) for e in entries]
    out.append(
        f"Data: {_dataset_text(comparison.get('dataset'))}, task {task} "
        f"(losses are {'cross-entropy' if task == 'classification' else 'mean squared error on standardised targets'}, "
        f"lower is better). Depths compared: {', '.join(depths) or 'none'}; each got its own Optuna study"
        + (f" of {trials} trials." if trials else ".")
    )
    out += ["", "## Results by depth", ""]
    out += _depth_table(comparison, entries)

    verdict = _verdict(comparison)
    if verdict is not None:
        pair_lines = _pair_table(comparison, verdict)
        if pair_lines:
            out += ["", "## Pairwise comparisons (tuned)", ""] + pair_lines
        if verdict.get("rule"):
            out += ["", f"**Decision rule.** {verdict['rule']}"]

    if any(_fixed(e) for e in entries):
        out += ["", "## Tuned versus one fixed setting", "", _fixed_sentence(comparison, entries)]
        fixed_verdict = _verdict(comparison, "fixed_verdict")
        if fixed_verdict is not None:
            pair_lines = _pair_table(comparison, fixed_verdict)
            if pair_lines:
                out += ["", "Pairwise, with the fixed setting:", ""] + pair_lines[:-2]

    out += ["", "## How the depths were evaluated", ""] + _evaluation_lines(comparison, entries)

    if plots:
        out += ["", "## Plots"]
        for filename in plots:
            alt, read = _READ[filename]
            out += ["", f"![{alt}]({filename})", "", read.format(level=level)]

    importance = _importance_lines(entries)
    if importance:
        out += ["", "## What mattered at each depth", "", "The two most important hyperparameters of each depth's search:", ""]
        out += importance

    out += ["", "## How to reproduce", ""] + _reproduce_lines(comparison, entries)
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots


def _depth_colours(entries: list[dict]) -> dict[int, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {e["depth"]: cmap(i % 10) for i, e in enumerate(entries)}


def _new_figure(size=_SIZE):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, format="png", metadata={"Software": None})
    return path


def _plot_test_loss(comparison: dict, entries: list[dict], path: Path) -> Path | None:
    tuned = {e["depth"]: e for e in entries if _has_test(e)}
    fixed = {e["depth"]: _fixed(e) for e in entries if _fixed(e)}
    if not tuned and not fixed:
        return None
    import numpy as np

    shown = [e["depth"] for e in entries if e["depth"] in tuned or e["depth"] in fixed]
    xs = {d: i for i, d in enumerate(shown)}
    both = bool(tuned) and bool(fixed)
    offset = 0.17 if both else 0.0
    rng = np.random.default_rng(0)
    level = _level(comparison)
    verdict = _verdict(comparison) or {}
    winner = verdict.get("winner")
    highlighted = [winner] if winner is not None else [d for d in verdict.get("tied") or [] if len(verdict["tied"]) > 1]

    fig, ax = _new_figure()
    for d in highlighted:
        if d in xs:
            label = "winner (tuned)" if winner is not None else "tied for first (tuned)"
            first = d == next(h for h in highlighted if h in xs)
            ax.axvspan(xs[d] - 0.45, xs[d] + 0.45, color=_WINNER_COLOUR, alpha=0.25, lw=0, zorder=0,
                       label=label if first else None)

    def series(items: dict, shift: float, colour: str, marker: str, label: str) -> None:
        depths = [d for d in shown if d in items]
        x = np.array([xs[d] + shift for d in depths])
        means = np.array([items[d]["test_loss_mean"] for d in depths], dtype=float)
        lows, highs = [], []
        for d, m in zip(depths, means):
            ci = _interval(items[d].get("test_loss_ci95")) or (m, m)
            lows.append(max(0.0, m - ci[0]))
            highs.append(max(0.0, ci[1] - m))
        for xi, d in zip(x, depths):
            pts = _values(items[d].get("test_losses"))
            if pts:
                jitter = rng.uniform(-0.05, 0.05, len(pts))
                ax.scatter(xi + jitter, pts, s=12, color=colour, alpha=0.3, lw=0, zorder=2)
        ax.errorbar(x, means, yerr=[lows, highs], fmt=marker, color=colour, ms=7, capsize=4, lw=1.6,
                    zorder=3, label=f"{label}: mean, {level} CI")

    if tuned:
        series(tuned, -offset, _TUNED_COLOUR, "o", "tuned per depth")
    if fixed:
        series(fixed, offset, _FIXED_COLOUR, "s", "one fixed setting")
    if any(_values(e.get("test_losses")) for e in tuned.values()) or any(_values(f.get("test_losses")) for f in fixed.values()):
        ax.scatter([], [], s=12, color="#555555", alpha=0.4, lw=0, label="single seeds")

    ax.set_xticks(range(len(shown)), [str(d) for d in shown])
    for tick, d in zip(ax.get_xticklabels(), shown):
        if d in highlighted:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_xlabel("depth (stacked LSTM layers)")
    ax.set_ylabel(f"test loss ({_loss_unit(comparison)})")
    title = "Test loss by depth: tuned per depth vs one fixed setting" if both else "Test loss by depth"
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(fig, path)


def _plot_expected_best(comparison: dict, entries: list[dict], path: Path) -> Path | None:
    curves = {e["depth"]: _series(e.get("expected_best")) for e in entries}
    curves = {d: c for d, c in curves.items() if any(math.isfinite(v) for v in c)}
    if not curves:
        return None
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    colours = _depth_colours(entries)
    fig, ax = _new_figure()
    longest = 1
    for e in entries:
        d = e["depth"]
        if d not in curves:
            continue
        y = np.array(curves[d])
        x = np.arange(1, y.size + 1)
        longest = max(longest, y.size)
        std = np.array(_series(e.get("expected_best_std")))
        if std.size == y.size:
            ax.fill_between(x, y - std, y + std, color=colours[d], alpha=0.15, lw=0)
        ax.plot(x, y, color=colours[d], lw=2, marker="o" if y.size <= 30 else None, ms=3, label=f"depth {d}")
    ax.set_xlim(0.8, longest + 0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials")
    ax.set_ylabel(f"expected best val loss\n({_loss_unit(comparison)})")
    ax.set_title("Expected best validation loss vs. number of trials (±1 std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9, title="depth ± 1 std", title_fontsize=8)
    return _save(fig, path)


def _plot_val_curves(comparison: dict, entries: list[dict], path: Path) -> Path | None:
    curves = {e["depth"]: _series(e.get("val_curve")) for e in entries}
    curves = {d: c for d, c in curves.items() if any(math.isfinite(v) for v in c)}
    if not curves:
        return None
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    colours = _depth_colours(entries)
    fig, ax = _new_figure()
    finite = [v for c in curves.values() for v in c if math.isfinite(v)]
    for e in entries:
        d = e["depth"]
        if d not in curves:
            continue
        y = np.array(curves[d])
        x = np.arange(1, y.size + 1)
        ax.plot(x, y, color=colours[d], lw=1.8, label=f"depth {d}")
        best = int(np.nanargmin(y))
        ax.plot(x[best], y[best], marker="o", color=colours[d], ms=5)
    if min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation loss ({_loss_unit(comparison)})")
    ax.set_title("Validation loss per epoch, best trial of each depth (dot: best epoch)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    return _save(fig, path)


def _plot_importance(comparison: dict, entries: list[dict], path: Path) -> Path | None:
    tables = {
        e["depth"]: {k: float(v) for k, v in e["importance"].items() if _finite(v)}
        for e in entries
        if isinstance(e.get("importance"), dict)
    }
    tables = {d: t for d, t in tables.items() if t}
    if not tables:
        return None
    import numpy as np

    # Most important first, by the total over depths (a parameter a depth lacks counts 0 there).
    names = sorted({k for t in tables.values() for k in t}, key=lambda k: -sum(t.get(k, 0.0) for t in tables.values()))
    depths = [e["depth"] for e in entries if e["depth"] in tables]
    colours = _depth_colours(entries)
    height = min(7.0, max(_SIZE[1], 1.0 + 0.12 * len(names) * len(depths) + 0.15 * len(names)))
    fig, ax = _new_figure((_SIZE[0], height))
    bar = 0.8 / len(depths)
    y = np.arange(len(names))
    for i, d in enumerate(depths):
        values = [tables[d].get(k, np.nan) for k in names]
        ax.barh(y - 0.4 + bar * (i + 0.5), values, height=bar * 0.95, color=colours[d], label=f"depth {d}")
    ax.set_yticks(y, [_param_label(k) for k in names])
    ax.invert_yaxis()
    ax.set_xlim(0, max(1e-9, max(v for t in tables.values() for v in t.values())) * 1.08)
    ax.set_xlabel("importance (fANOVA share of validation-loss variance)")
    ax.set_title("Which hyperparameters mattered, by depth")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return _save(fig, path)


_PLOTS = {
    "test_loss_by_depth.png": _plot_test_loss,
    "expected_best.png": _plot_expected_best,
    "val_curves.png": _plot_val_curves,
    "importance.png": _plot_importance,
}


# ----------------------------------------------------------------------------- entry point


def write_report(comparison: dict, out_dir: Path) -> list[Path]:
    """Writes out_dir/report.md and the plots that have data; returns the written paths, report.md first.

    Previous report files are overwritten, and a plot left over from an earlier report whose data is
    now missing is removed, so report.md never sits beside a stale figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = _entries(comparison)
    written: list[Path] = []
    with matplotlib.rc_context({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "axes.spines.top": False,
                                "axes.spines.right": False}):
        for filename in PLOT_FILES:
            path = out_dir / filename
            if _PLOTS[filename](comparison, entries, path) is not None:
                written.append(path)
            elif path.exists():
                path.unlink()
    report = out_dir / "report.md"
    report.write_text(_markdown(comparison, entries, [p.name for p in written]), encoding="utf-8")
    return [report, *written]
