"""The evaluation's figures: each configuration's test losses over the seeds, and from them the verdicts, the
tuning gains and the conclusion, written into the comparison. Plain functions of the retrainings' results (no Ray,
MLflow or files): the stage in `stage.py` runs the retrainings and hands their results here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..spec.schema import SearchSpec
from ..verdict import replicates as replicate_stats
from ..verdict import stats, versus_fixed
from ..verdict.comparison import Comparison


def run_loss(metrics: dict) -> float:
    """A run's test loss; a failed or diverged run (no finite test loss) is the worst outcome, infinity."""
    value = metrics.get("test_loss")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def _mean_val(runs: list[tuple[dict, dict]]) -> float:
    values = [m.get("val_loss") for _, m in runs]
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(values) else math.inf


def _scores(runs: list[tuple[dict, dict]], confidence: float) -> dict[str, Any]:
    """The test figures of one configuration's runs, sorted by seed: every run's loss (None where it failed),
    the mean and interval of the finite ones, and how many failed."""
    losses = [run_loss(m) for _, m in runs]
    finite = [v for v in losses if math.isfinite(v)]
    scores: dict[str, Any] = {
        "test_losses": [v if math.isfinite(v) else None for v in losses],
        "failed_runs": len(losses) - len(finite),
        "test_loss_mean": None,
        "test_loss_ci95": None,
        "test_loss_ci_method": None,
    }
    if finite:
        mean, ci = stats.mean_interval(finite, confidence=confidence)
        scores.update(test_loss_mean=mean, test_loss_ci95=ci.as_list(), test_loss_ci_method=ci.method)
    return scores


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def pool_origins(results: list[tuple[dict, dict]], weights: list[int]) -> list[tuple[dict, dict]]:
    """Each (configuration, seed)'s runs on the data origins made into one run: its test loss the mean over every
    origin's test windows (each origin weighted by its windows, as one backtest over all of them), its validation
    loss the mean of the origins'. A run that failed at any origin, or did not run there, failed as a whole.

    Every candidate is scored on the same origins, so a test period harder than the others raises every depth's
    loss alike and drops out of their comparison: the verdict is blocked by origin. `weights` holds each origin's
    test windows, in origin order; results without origins are returned as they are."""
    if len(weights) < 2 or not any("origin" in job for job, _ in results):
        return results
    groups: dict[tuple, dict[int, tuple[dict, dict]]] = {}
    for job, metrics in results:
        key = (job["depth"], job["kind"], job["rank"], job["seed"], job.get("replicate") or 1)
        groups.setdefault(key, {})[int(job.get("origin") or 1)] = (job, metrics)
    pooled = []
    total = sum(weights)
    for by_origin in groups.values():
        first = by_origin[min(by_origin)][0]
        job = {k: v for k, v in first.items() if k != "origin"}
        runs = [by_origin.get(number, (None, {}))[1] for number in range(1, len(weights) + 1)]
        metrics: dict[str, Any] = {"origin_test_losses": [run_loss(m) for m in runs]}
        if all(_finite(m.get("test_loss")) for m in runs):
            metrics["test_loss"] = sum(w * m["test_loss"] for w, m in zip(weights, runs, strict=True)) / total
        if all(_finite(m.get("test_accuracy")) for m in runs):
            metrics["test_accuracy"] = sum(w * m["test_accuracy"] for w, m in zip(weights, runs, strict=True)) / total
        for name in ("val_loss", "val_accuracy"):
            if all(_finite(m.get(name)) for m in runs):
                metrics[name] = sum(m[name] for m in runs) / len(runs)
        if (params := next((m["params"] for m in runs if "params" in m), None)) is not None:
            metrics["params"] = params
        pooled.append((job, metrics))
    return pooled


def aggregate(
    spec: SearchSpec,
    comparison: Comparison,
    results: list[tuple[dict, dict]],
    *,
    looks: int = 1,
    naive: dict | None = None,
    weights: list[int] | None = None,
) -> dict[int, float]:
    """Adds test-loss means, intervals, the verdicts and the conclusion to `comparison`.

    Runs are matched by seed; a failed run counts as the worst loss in the verdict and is never dropped. With
    several data origins (`weights`: each one's test windows), each configuration and seed's runs on them are pooled
    first (`pool_origins`). Returns each depth's mean validation loss over its evaluated runs (for the
    distribution-shift check).
    """
    results = pool_origins(results, weights or [])
    conf = spec.evaluation.confidence
    tuned: dict[int, list[float]] = {}
    groups: dict[int, list[int]] = {}
    fixed: dict[int, list[float]] = {}
    val_loss: dict[int, float] = {}
    for entry in comparison.depths:
        runs = [(job, m) for job, m in results if job["depth"] == entry.depth]
        searches: dict[int, dict[int, list[tuple[dict, dict]]]] = {}  # replicate -> rank -> runs
        for job, m in runs:
            if job["kind"] == "tuned":
                searches.setdefault(job.get("replicate") or 1, {}).setdefault(job["rank"], []).append((job, m))
        if searches:
            chosen, ranks = [], {}
            for replicate in sorted(searches):
                by_rank = searches[replicate]
                # With top-k candidates, each search is represented by the one best on validation (the lower rank on
                # a tie, whatever order the runs finished in), then scored on test.
                rank = min(by_rank, key=lambda r, by_rank=by_rank: (_mean_val(by_rank[r]), r))
                ranks[replicate] = rank
                chosen += sorted(by_rank[rank], key=lambda jm: jm[0]["seed"])
            groups[entry.depth] = [job.get("replicate") or 1 for job, _ in chosen]
            _score_tuned(entry, chosen, searches, ranks, conf)
            tuned[entry.depth] = [run_loss(m) for _, m in chosen]
            if math.isfinite(mean_val := _mean_val(chosen)):
                val_loss[entry.depth] = mean_val
        base = sorted(((job, m) for job, m in runs if job["kind"] == "fixed"), key=lambda jm: jm[0]["seed"])
        if base:
            params = next((m["params"] for _, m in base if "params" in m), None)
            entry.fixed = {"config": base[0][0]["config"], "params": params, **_scores(base, conf)}
            fixed[entry.depth] = [run_loss(m) for _, m in base]
    if tuned:
        _conclude(spec, comparison, tuned, fixed, looks=looks, naive=naive, groups=groups)
    return val_loss


def _score_tuned(entry, chosen: list, searches: dict, ranks: dict[int, int], confidence: float) -> None:
    """A depth's tuned test figures from its chosen runs (every replicate search's, in replicate order); with
    several searches, each search's own figures too, and the depth's interval taken over the searches."""
    scores = _scores(chosen, confidence)
    entry.test_losses, entry.failed_runs = scores["test_losses"], scores["failed_runs"]
    entry.test_loss_mean, entry.test_loss_ci95 = scores["test_loss_mean"], scores["test_loss_ci95"]
    entry.test_loss_ci_method = scores["test_loss_ci_method"]
    entry.seeds = [job["seed"] for job, _ in chosen]
    accuracies = [m["test_accuracy"] for _, m in chosen if "test_accuracy" in m]
    if accuracies:
        entry.test_accuracy_mean = sum(accuracies) / len(accuracies)
    if len(searches) == 1:
        (replicate,) = searches
        rank = ranks[replicate]
        entry.evaluated_rank = rank
        if rank != 0 or len(searches[replicate]) > 1:
            entry.evaluated_config = chosen[0][0]["config"]
        return
    entry.evaluated_rank = None
    means = []
    for found in entry.replicates or []:
        replicate = found.replicate
        own = [(job, m) for job, m in chosen if (job.get("replicate") or 1) == replicate]
        if not own:
            continue
        losses = [run_loss(m) for _, m in own]
        means.append(sum(losses) / len(losses))
        found.test_losses = [v if math.isfinite(v) else None for v in losses]
        found.test_loss_mean = means[-1] if math.isfinite(means[-1]) else None
        found.evaluated_rank = ranks[replicate]
        if ranks[replicate] != 0:
            found.evaluated_config = own[0][0]["config"]
    if len(means) >= 2 and all(map(math.isfinite, means)):
        mean, ci = replicate_stats.mean_interval(np.array(means), confidence)
        entry.test_loss_mean, entry.test_loss_ci95, entry.test_loss_ci_method = mean, ci.as_list(), ci.method


def _conclude(
    spec: SearchSpec,
    comparison: Comparison,
    tuned: dict,
    fixed: dict,
    *,
    looks: int,
    naive: dict | None,
    groups: dict[int, list[int]] | None = None,
) -> None:
    """The verdicts, tuned and with the fixed setting, the trend with depth, and the tested statement of whether
    the fixed setting would have changed the conclusion (with the tuning gain of each depth). `groups` gives each
    tuned run's replicate search, where a depth was searched several times."""
    conf = spec.evaluation.confidence
    verdict = stats.compare(tuned, confidence=conf, seed=spec.seed, looks=looks, replicates=groups)
    comparison.verdict = verdict.to_dict()
    by_search = replicate_stats.clustered(groups)
    comparison.agreement = None
    if by_search:
        # Each search's mean, once: the agreement counts compare them, and tuned against fixed compares a search's
        # outcome with the fixed setting's, each search one value.
        means = {
            d: dict(
                zip(
                    sorted(set(groups[d])),
                    replicate_stats.replicate_means(np.array(v, dtype=float), groups[d]),
                    strict=True,
                )
            )
            for d, v in tuned.items()
        }
        comparison.agreement = _agreement(means, verdict)
        tuned = {d: list(by_number.values()) for d, by_number in means.items()}
    tuned_text = verdict.summary + (f"; {verdict.trend.summary}" if verdict.trend is not None else "")
    sentence = f"Tuned separately, {tuned_text}."
    comparison.conclusion_changed = comparison.conclusion_reasons = comparison.fixed_loses_to_naive = None
    comparison.tuning = None
    if fixed:
        fixed_verdict = stats.compare(fixed, confidence=conf, seed=spec.seed, looks=looks)
        comparison.fixed_verdict = fixed_verdict.to_dict()
        settings = versus_fixed.compare_settings(
            tuned,
            fixed,
            tuned_verdict=verdict,
            fixed_verdict=fixed_verdict,
            naive_loss=None if naive is None else naive["loss"],
            confidence=conf,
            looks=looks,
        )
        comparison.tuning = settings.to_dict()
        comparison.conclusion_changed = settings.changed
        comparison.conclusion_reasons = settings.reasons
        comparison.fixed_loses_to_naive = settings.fixed_loses_to_naive
        for gain in map(versus_fixed.Gain.to_dict, settings.gains):
            entry = comparison.entry(gain["depth"])
            entry.tuning_gain, entry.tuning_gain_ci = gain["gain"], gain["ci"]
        b = spec.baseline
        sentence = (
            f"Tuned separately, {tuned_text}; "
            f"with one fixed setting ({b.units} units per layer, lr {b.lr:g}), {fixed_verdict.summary}: "
            f"{settings.sentence}"
        )
    comparison.conclusion = sentence


def _agreement(means: dict[int, dict[int, float]], verdict: stats.Verdict) -> list[dict[str, Any]]:
    """For each pair of depths: the order the verdict's call (or, without one, the overall means) gives, and in how
    many replicate searches, compared number with number, the two depths' mean test losses (`means`: depth ->
    replicate number -> mean) are in that order."""
    found = []
    for pair in verdict.pairs:
        a, b = pair.a, pair.b
        shared = sorted(set(means[a]) & set(means[b]))
        if pair.better is not None:
            leader = pair.better
        else:
            overall = {d: float(np.mean(list(means[d].values()))) for d in (a, b)}
            leader = a if overall[a] < overall[b] else (b if overall[b] < overall[a] else None)
        other = b if leader == a else a
        agree = sum(means[leader][r] < means[other][r] for r in shared) if leader is not None else 0
        found.append({"a": a, "b": b, "better": pair.better, "leader": leader, "agree": int(agree), "of": len(shared)})
    return found


def _chosen_rank(entry, replicate: int) -> int:
    """The rank of the candidate that represents a depth's replicate search (its best on validation)."""
    for found in entry.replicates or []:
        if found.replicate == replicate and found.evaluated_rank is not None:
            return int(found.evaluated_rank)
    return int(entry.evaluated_rank or 0)


def _mean(losses: list[float]) -> float | None:
    return sum(losses) / len(losses) if losses and all(map(math.isfinite, losses)) else None


def origin_figures(
    comparison: Comparison, results: list[tuple[dict, dict]], origins: list[dict], naive: list[dict | None]
) -> tuple[list[dict[str, Any]], dict[int, dict[int, float]]]:
    """Each data origin's own figures: what it is (`origins`, the sets' `meta["origin"]` with their sizes), the best
    naive baseline there (`naive`), and each depth's mean test loss there, tuned (the runs the verdict uses) and
    with the fixed setting, None where a run failed. Also returns each origin's mean validation loss per depth."""
    table, val_by_origin = [], {}
    for number, (origin, best) in enumerate(zip(origins, naive, strict=True), start=1):
        at = [(job, m) for job, m in results if int(job.get("origin") or 1) == number]
        depths, val = [], {}
        for entry in comparison.depths:
            tuned = [
                (job, m)
                for job, m in at
                if job["depth"] == entry.depth
                and job["kind"] == "tuned"
                and job["rank"] == _chosen_rank(entry, job.get("replicate") or 1)
            ]
            fixed = [run_loss(m) for job, m in at if job["depth"] == entry.depth and job["kind"] == "fixed"]
            if not tuned and not fixed:
                continue
            depths.append(
                {"depth": entry.depth, "tuned": _mean([run_loss(m) for _, m in tuned]), "fixed": _mean(fixed)}
            )
            if tuned and math.isfinite(mean_val := _mean_val(tuned)):
                val[entry.depth] = mean_val
        scored = [d for d in depths if d["tuned"] is not None]
        leader = min(scored, key=lambda d: d["tuned"])["depth"] if scored else None
        table.append(
            {
                **origin,
                "naive": None if best is None else {"kind": best["kind"], "loss": best["loss"]},
                "depths": depths,
                "leader": leader,
            }
        )
        val_by_origin[number] = val
    return table, val_by_origin


def origin_agreement(table: list[dict[str, Any]], verdict) -> list[dict[str, Any]]:
    """For each pair of depths: the order the verdict's call gives (without one, the lower mean over the origins),
    and at how many data origins the two depths' mean test losses are in that order."""
    means = {
        number: {d["depth"]: d["tuned"] for d in origin["depths"] if d["tuned"] is not None}
        for number, origin in enumerate(table, start=1)
    }
    found = []
    for pair in (verdict.pairs or []) if verdict is not None else []:
        a, b, better = pair.a, pair.b, pair.better
        shared = [m for m in means.values() if a in m and b in m]
        leader = better
        if leader is None and shared:
            mean_a, mean_b = (float(np.mean([m[d] for m in shared])) for d in (a, b))
            leader = a if mean_a < mean_b else (b if mean_b < mean_a else None)
        other = b if leader == a else a
        agree = sum(m[leader] < m[other] for m in shared) if leader is not None else 0
        found.append({"a": a, "b": b, "better": better, "leader": leader, "agree": int(agree), "of": len(shared)})
    return found


def decided(comparison: Comparison) -> bool:
    """The best depth is named, or every pair of depths has a call: more seeds cannot change what the verdict says."""
    verdict = comparison.verdict
    if verdict is None:
        return False
    pairs = verdict.pairs or []
    return verdict.winner is not None or (bool(pairs) and all(p.better is not None for p in pairs))


def mark_incomplete(comparison: Comparison, *, missing: int, planned: int) -> None:
    """A comparison whose evaluation lacks `missing` of its `planned` jobs says so, and concludes nothing: the
    verdict is undecided whatever the jobs that ran would suggest, and a resume runs the missing ones."""
    sentence = (
        f"The evaluation is incomplete: {missing} of {planned} retrainings did not run, so no depth is called "
        "better than another; run the search again with --resume to finish them."
    )
    done = comparison.evaluation.to_dict() if comparison.evaluation is not None else {}
    comparison.evaluation = {**done, "missing": missing, "planned": planned}
    comparison.verdict = {
        "winner": None,
        "tied": [],
        "undecided": True,
        "pairs": [],
        "rule": "",
        "needed_seeds": None,
        "summary": f"{missing} of {planned} retrainings did not run",
    }
    comparison.fixed_verdict = None
    comparison.conclusion_changed = None
    comparison.conclusion = comparison.headline = sentence
