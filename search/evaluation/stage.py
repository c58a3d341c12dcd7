"""The evaluation stage: multi-seed re-evaluation on the test split, the fixed-setting baseline, and the verdict.

Each depth's best configuration (top-k) and the one fixed setting people usually use are
retrained with the same seeds on the training split, the best epoch chosen on validation,
and scored on the test split that the search never saw. The jobs run on Ray Tune like trials
(every round of seeds in one Ray Tune run; a configuration's seeds train one after another in
one trial) and each retraining is logged to MLflow under its depth run (`stacktune.role=eval`),
through the search's `BufferedWriter`: while the tracking server does not answer, the
retrainings go on and their runs wait for it. `scoring.py` turns their results into the
comparison's figures and verdicts.
"""

from __future__ import annotations

import math
from typing import Any

from stacktune.datasets.origins import evaluation_origins

from ..engine.ray_setup import make_tuner, trial_slots
from ..engine.rounds import JobRounds
from ..engine.signals import fit
from ..engine.space import TrialSpace
from ..engine.studies import by_cell, top_configs
from ..engine.trainable import run_eval
from ..progress import Progress
from ..spec.convert import baseline_config, evaluation_seeds
from ..spec.schema import SearchSpec
from ..tracking import store, tags
from ..tracking.buffer import BufferedWriter
from ..tracking.eval_runs import HOLDING, EvalRuns, job_key, seed_number
from ..tracking.run_tree import RunTree
from ..tracking.tags import replicate_of
from ..verdict import baselines, checks, stats
from ..verdict.comparison import Comparison
from .scoring import aggregate, decided, mark_incomplete, origin_agreement, origin_figures, run_loss


def plan_jobs(spec: SearchSpec, candidates: dict, seeds: list[int]) -> list[dict[str, Any]]:
    """One job per (depth, replicate search's tuned candidate or the fixed setting, seed, data origin).

    `candidates` maps (depth, replicate) to that study's top configurations; a key that is a depth alone stands for
    its first replicate. A tuned job of a search with several replicates per depth carries its `replicate`; with
    several data origins (`evaluation.origins`), every job carries its `origin`, numbered from 1."""
    jobs = []
    for depth in spec.depths:
        configs = []
        for replicate in range(1, spec.replicates + 1):
            found = candidates.get((depth, replicate), candidates.get(depth, []) if replicate == 1 else [])
            number = replicate_of(spec.replicates, replicate)
            configs += [("tuned", rank, cfg, number) for rank, cfg in enumerate(found)]
        if spec.baseline is not None:
            configs.append(("fixed", 0, baseline_config(spec, depth), None))
        origins = spec.evaluation.origins
        for kind, rank, cfg, replicate in configs:
            for seed in seeds:
                for origin in range(1, origins + 1):
                    job = {"depth": depth, "kind": kind, "rank": rank, "seed": seed}
                    job["config"] = cfg.model_dump(mode="json")
                    if replicate is not None:
                        job["replicate"] = replicate
                    if origins > 1:
                        job["origin"] = origin
                    jobs.append(job)
    return jobs


def bundle_jobs(jobs: list[dict[str, Any]], slots: int) -> list[dict[str, Any]]:
    """`jobs` that differ only in their seed gathered into jobs of several `seeds`, each trained in one process one
    seed after another: one Ray Tune trial, not one per seed.

    A configuration's seeds are split into as many parts as it takes for every one of the cluster's `slots` to have
    a job: on a cluster wider than the configurations, the seeds still train side by side. The longest jobs come
    first (by their weights times their seeds), so that a short one, not a long one, is what runs last."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for job in jobs:
        depth, kind, rank, _, replicate, origin = job_key(job)
        groups.setdefault((depth, kind, rank, replicate, origin), []).append(job)
    parts = math.ceil(max(1, slots) / max(1, len(groups)))
    bundles = []
    for same in groups.values():
        size = math.ceil(len(same) / min(parts, len(same)))
        for start in range(0, len(same), size):
            part = same[start : start + size]
            common = {key: value for key, value in part[0].items() if key != "seed"}
            bundles.append({**common, "seeds": [job["seed"] for job in part]})
    return sorted(bundles, key=lambda bundle: -len(bundle["seeds"]) * _weights(bundle["config"]["model"]["units"]))


def _weights(units: list[int]) -> int:
    """About how many weights an LSTM stack of these widths has (one input, one output): what a step costs."""
    from stacktune.models.lstm import LSTMConfig, count_parameters

    return count_parameters(LSTMConfig(input_size=1, units=list(units), output_size=1))


def seed_rounds(spec: SearchSpec) -> list[int]:
    """The seed counts after each round of evaluation: one round of `evaluation.seeds`, or with `seeds: auto`
    rounds that grow to `max_seeds`.

    With auto, the first round is the fewest seeds that could decide a pair at the level each of the rounds is
    tested at (the level is split over the rounds, so that looking after every round keeps the false-call rate).
    """
    evaluation = spec.evaluation
    if evaluation.seeds != "auto":
        return [evaluation.seeds]
    k, most = len(spec.depths), evaluation.max_seeds
    looks, counts = 1, [most]
    for _ in range(20):  # the number of rounds and the first round's size settle within a few steps
        first = max(2, stats.min_seeds(k, confidence=evaluation.confidence, looks=looks))
        if first >= most:
            return [most]
        step = max(2, math.ceil(first / 2))
        counts = [*range(first, most, step), most]
        if len(counts) == looks:
            break
        looks = len(counts)
    return counts


def _job_name(trial) -> str:
    job = trial.config["job"]
    replicate = f"-rep{job['replicate']}" if job.get("replicate") else ""
    origin = f"-o{job['origin']}" if job.get("origin") else ""
    seeds = [seed_number(seed) for seed in job["seeds"]]
    numbers = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}to{seeds[-1]}"
    return f"d{job['depth']}{replicate}-{job['kind']}{job['rank']}-s{numbers}{origin}-{trial.trial_id}"


def run_jobs(spec: SearchSpec, rounds: JobRounds, data, *, runs: EvalRuns, storage_path: str) -> None:
    """Runs the evaluation jobs, round after round, in one Ray Tune run; `runs` logs them and keeps their results."""
    tuner = make_tuner(
        run_eval,
        spec=spec,
        name="evaluation",
        storage_path=storage_path,
        callbacks=[runs],
        data=data,
        trial_name=_job_name,
        search_alg=rounds,
        num_samples=-1,  # as many as the rounds hand out
        threads=max(1, int(spec.resources.cpus_per_trial)),
        gpus=spec.resources.gpus_per_trial,
    )
    fit(tuner)  # raises SearchInterrupted on a stop signal: a cut-off evaluation is never concluded


class _SeedRounds:
    """The evaluation's rounds of seeds: each next round's jobs, until every pair of depths is decided (with
    `seeds: auto`) or the planned seeds have all run."""

    def __init__(
        self,
        spec: SearchSpec,
        candidates: dict,
        comparison: Comparison,
        runs: EvalRuns,
        progress: Progress,
        kept: dict[tuple, dict] | None = None,
        naive: dict | None = None,
        weights: list[int] | None = None,
        slots: int = 1,
    ):
        self._spec, self._candidates, self._comparison = spec, candidates, comparison
        self._naive = naive  # the best naive baseline on the test split, which the conclusion weighs
        self._weights = weights  # each data origin's test windows, where there are several
        self._runs, self._progress = runs, progress
        self._slots = slots  # trials the cluster runs at once: a round's seeds are bundled to keep them busy
        self._kept = dict(kept or {})  # job_key -> metrics: jobs an earlier, cut-off attempt finished
        self.counts = seed_rounds(spec)  # seeds per configuration after each planned round
        self.seeds = evaluation_seeds(spec, self.counts[-1])  # every seed the rounds may hand out, in order
        self.done = 0  # seeds per configuration handed out so far
        self.planned = 0  # the jobs of every round begun so far, kept ones included

    @property
    def number(self) -> int:
        """How many rounds have been handed out."""
        return self.counts.index(self.done) + 1 if self.done else 0

    def next_jobs(self) -> list[dict]:
        """The next round's jobs still to run, bundled by configuration (see bundle_jobs), or none: the verdict on what
        ran is decided, or no round is left.

        A retraining an earlier attempt of the search finished is not run again: its result is taken as it was."""
        spec = self._spec
        while True:
            if self.done:
                aggregate(
                    spec,
                    self._comparison,
                    self._runs.results,
                    looks=len(self.counts),
                    naive=self._naive,
                    weights=self._weights,
                )
                if self.done == self.counts[-1] or decided(self._comparison):
                    return []
            count = self.counts[self.number]
            jobs = plan_jobs(spec, self._candidates, self.seeds[self.done : count])
            if not jobs:
                return []
            self.planned += len(jobs)
            owed = []
            for job in jobs:
                if (metrics := self._kept.pop(job_key(job), None)) is not None:
                    self._runs.results.append((job, metrics))
                else:
                    owed.append(job)
            seeds, self.done = count - self.done, count
            if owed:
                sequential = spec.evaluation.seeds == "auto"
                self._progress.evaluation_started(
                    jobs=len(owed),
                    seeds=seeds,
                    round=self.number if sequential else None,
                    origins=spec.evaluation.origins,
                )
                self._runs.round_started(len(owed))
                return bundle_jobs(owed, self._slots)


def evaluate_search(
    spec: SearchSpec,
    studies: dict,
    comparison: Comparison,
    data,
    *,
    writer: BufferedWriter,
    tree: RunTree,
    storage_path: str,
    progress: Progress,
    kept: dict[tuple, dict] | None = None,
) -> None:
    """Retrains every depth's best (and the fixed setting) over the seeds, then adds the verdict, the naive
    baselines and the warnings to `comparison`. With `seeds: auto`, seeds come in rounds until every pair is decided.

    `kept` (job_key -> metrics) holds the jobs a cut-off earlier attempt finished: they are not run again. A stop
    signal raises SearchInterrupted before anything is concluded. Every MLflow write goes through `writer` and may
    still be queued on return (the store not answering).
    """
    writer.holding = HOLDING
    top_k = spec.evaluation.top_k
    space = TrialSpace.of(spec)
    candidates = {(d, r): top_configs(space, study, d, top_k) for (d, r), study in by_cell(studies).items()}
    runs = EvalRuns(
        writer=writer,
        experiment_id=tree.experiment_id,
        search=spec.name,
        depth_runs=tree.depth_runs,
        replicate_runs=tree.replicate_runs,
        progress=progress,
    )
    origins = evaluation_origins(data, spec.evaluation.origins, seed=spec.seed)
    weights = [len(origin.test) for origin in origins]
    by_origin = [baselines.naive_baselines(origin) for origin in origins]
    scored = baselines.pooled(by_origin, weights)
    naive = baselines.best_baseline(scored)
    rounds = _SeedRounds(
        spec, candidates, comparison, runs, progress, kept=kept, naive=naive, weights=weights, slots=trial_slots(spec)
    )
    first = rounds.next_jobs()
    if first:
        # Several origins travel together; a job names the one it trains on.
        on = origins if len(origins) > 1 else data
        run_jobs(spec, JobRounds(first, rounds.next_jobs), on, runs=runs, storage_path=storage_path)
    results = runs.results
    if not results:
        return
    val_loss = aggregate(spec, comparison, results, looks=len(rounds.counts), naive=naive, weights=weights)
    comparison.evaluation = {
        "seeds": rounds.seeds[: rounds.done],
        "refit": "train",
        "top_k": spec.evaluation.top_k,
        "confidence": spec.evaluation.confidence,
        "jobs": len(results),
        "replicates": spec.replicates,
        "origins": len(origins),
        "finished": sum(1 for _, m in results if math.isfinite(run_loss(m))),
        "failed": sum(1 for _, m in results if not math.isfinite(run_loss(m))),
    }
    if spec.evaluation.seeds == "auto":
        evaluation = comparison.evaluation
        evaluation.sequential, evaluation.rounds = True, rounds.counts[: rounds.number]
        evaluation.planned_rounds = rounds.counts
    checks.add_baselines(comparison, data, found=scored)
    by_origin_val = None
    if len(origins) > 1:
        table, by_origin_val = origin_figures(
            comparison,
            results,
            [{**origin.meta["origin"], "sizes": origin.meta["sizes"], **_segments(origin)} for origin in origins],
            [baselines.best_baseline(found) for found in by_origin],
        )
        comparison.origins = table
        comparison.origin_agreement = origin_agreement(table, comparison.verdict)
    checks.add_warnings(spec, comparison, data, eval_val_loss=val_loss, origins=origins, origin_val=by_origin_val)
    comparison.headline = checks.headline(comparison)
    if (missing := rounds.planned - len(results)) > 0:
        mark_incomplete(comparison, missing=missing, planned=rounds.planned)
    log_evaluation(writer, tree, comparison)


def _segments(origin) -> dict:
    """A rolling origin's segment rows (a re-split has none)."""
    return {"segments": origin.meta["segments"]} if origin.meta["origin"]["kind"] == "rolling" else {}


def kept_evaluation(spec: SearchSpec, comparison: Comparison, saved: Comparison) -> bool:
    """Whether `saved` (the comparison.json an earlier attempt of this search wrote before MLflow stopped answering)
    holds the evaluation this attempt would make: the same search run and trials, the same evaluation settings."""
    done = saved.evaluation
    if not spec.evaluation.enabled or not done or saved.mlflow_run_id != comparison.mlflow_run_id:
        return False

    def trials(c: Comparison) -> list:
        return [(d.depth, d.trials, d.best_trial.name if d.best_trial is not None else None) for d in c.depths]

    if trials(saved) != trials(comparison) or saved.baseline != comparison.baseline:
        return False
    settings = spec.evaluation
    if (done.top_k, done.confidence) != (settings.top_k, settings.confidence):
        return False
    if (done.origins or 1) != settings.origins:
        return False
    if settings.seeds == "auto":
        return done.planned_rounds == seed_rounds(spec)
    return done.seeds == evaluation_seeds(spec, settings.seeds)


def log_evaluation(writer: BufferedWriter, tree: RunTree, comparison: Comparison) -> None:
    """The test figures on each depth run; the conclusion, the naive baseline and the warnings on the search run."""
    for entry in comparison.depths:
        values = {
            "test_loss_mean": entry.test_loss_mean,
            "fixed_test_loss_mean": entry.fixed.test_loss_mean if entry.fixed is not None else None,
            "skill": entry.skill,
            "failed_eval_runs": entry.failed_runs,
        }
        if entry.test_loss_ci95:
            values.update(test_loss_ci_low=entry.test_loss_ci95[0], test_loss_ci_high=entry.test_loss_ci95[1])
        depth_run = writer.adopt(tree.depth_runs[entry.depth], run_name=f"depth-{entry.depth}")
        writer.log_batch(depth_run, metrics=store.epoch_metrics(0, values))
    found: dict[str, str] = {}
    metrics: dict[str, float] = {}
    for baseline in comparison.baselines or []:
        metrics[f"naive_{baseline.kind}_test_loss"] = baseline.loss
    if comparison.baselines:
        best = min(comparison.baselines, key=lambda b: b.loss)
        found[tags.NAIVE_BASELINE] = f"{best.kind} {best.loss:.6g}"
    found[tags.WARNINGS] = ",".join(w.code for w in comparison.warnings or []) or "none"
    if comparison.conclusion:
        verdict = comparison.verdict
        winner = verdict.winner if verdict.winner is not None else ("undecided" if verdict.undecided else "tie")
        found.update({tags.VERDICT: comparison.conclusion, tags.WINNER: str(winner)})
    search = writer.adopt(tree.search_id, run_name="the search run")
    writer.log_batch(search, metrics=store.epoch_metrics(0, metrics), tags=store.as_tags(found))
    if comparison.conclusion:
        writer.append_to_tag(search, tags.NOTE, "\n\n" + comparison.conclusion)
