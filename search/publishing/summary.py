"""A finished search's summary: each depth's best trial, budget spent, expected best and importance,
read from the studies, with the best trial's model attached to its MLflow run."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import FixedTrial

from ..engine.space import TrialSpace
from ..engine.studies import by_cell, counted_trials, importance, trial_counts
from ..spec.schema import SearchSpec
from ..tracking import store, tags
from ..tracking.models import log_best_model
from ..tracking.run_tree import RunTree
from ..tracking.tags import replicate_of
from ..tracking.trial_runs import TrialRuns
from ..verdict.comparison import Comparison, DepthEntry
from ..verdict.curves import curve_crossings, expected_best, expected_best_std


def _run_of(client, depth_run: str, ray_id: str) -> str | None:
    """The MLflow run of a trial that ran before a resume, found by its Ray trial id."""
    experiment_id = client.get_run(depth_run).info.experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{tags.RAY_TRIAL_ID}` = '{ray_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _saved_checkpoint(storage_path: str, ray_id: str) -> Path | None:
    """The newest checkpoint folder a trial left in Ray's storage (on a filesystem this process sees), if any."""
    if "://" in storage_path:
        return None
    found = sorted(Path(storage_path).glob(f"*/*-{ray_id}/checkpoint_*"))
    return found[-1] if found else None


def _depth_summary(
    spec: SearchSpec,
    depth: int,
    studies: list,
    *,
    space: TrialSpace,
    client,
    tree: RunTree,
    trials: TrialRuns,
    data,
    storage_path: str,
) -> DepthEntry:
    """One depth's entry of comparison.json, from its study (or the studies of its replicate searches, in order);
    logs its best to MLflow on the way. With replicates, the entry's best is the best over all of them."""
    depth_run = tree.depth_runs[depth]
    counted = [t for study in studies for t in counted_trials(study)]
    epochs = sum(int(t.user_attrs.get("epoch", 0)) for t in counted)
    seconds = sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in counted)
    values = [t.value for study in studies for t in study.get_trials(deepcopy=False) if t.value is not None]
    # With a seconds budget each search of the depth ran as many trials as its time allowed: its curve goes that far.
    n_max = spec.trials_per_depth if spec.budget.kind == "trials" else max(1, round(len(counted) / len(studies)))
    done = [study for study in studies if trial_counts(study)["completed"]]
    best_study = min(done, key=lambda study: study.best_value) if done else studies[0]
    importances, importance_method = importance(best_study)
    tally = [trial_counts(study) for study in studies]
    entry = DepthEntry(
        depth=depth,
        trials={k: sum(t[k] for t in tally) for k in ("completed", "pruned", "failed")},
        epochs=epochs,
        train_seconds=round(seconds, 3),
        mlflow_run_id=depth_run,
        expected_best=expected_best(values, n_max=n_max),
        expected_best_std=expected_best_std(values, n_max=n_max),
        importance=importances,
        importance_method=importance_method,
    )
    if counted:
        # The same curve against training time: n trials cost n times a trial's mean seconds.
        mean_seconds = seconds / len(counted)
        entry.expected_best_seconds = [round((n + 1) * mean_seconds, 3) for n in range(len(entry.expected_best))]
    if spec.budget.kind == "seconds":
        per_search = seconds / len(studies)
        entry.overshoot_seconds = round(max(0.0, per_search - spec.budget.per_depth), 3)
    counts = entry.trials
    metrics = {"trials_completed": counts.completed, "trials_pruned": counts.pruned, "trials_failed": counts.failed}
    metrics |= {"epochs": epochs, "train_seconds": seconds}
    if done:
        replicate = studies.index(best_study) + 1
        _record_best(
            space,
            depth,
            best_study,
            entry,
            client=client,
            depth_run=depth_run,
            trials=trials,
            data=data,
            storage_path=storage_path,
            search=spec.name,
            replicate=replicate_of(spec.replicates, replicate),
        )
        metrics["best_val_loss"] = entry.best_val_loss
    if spec.replicates > 1:
        entry.replicates = [
            _replicate_best(space, depth, r, study, client=client, tree=tree, trials=trials)
            for r, study in enumerate(studies, start=1)
        ]
    store.log_batch(client, depth_run, metrics=store.epoch_metrics(0, metrics))
    return entry


def _replicate_best(space: TrialSpace, depth: int, replicate: int, study, *, client, tree: RunTree, trials: TrialRuns):
    """One replicate search's own best (none without a completed trial), also tagged on its replicate run."""
    counts = trial_counts(study)
    found: dict = {"replicate": replicate, "trials": counts, "best_val_loss": None}
    run = tree.replicate_runs.get((depth, replicate))
    if not counts["completed"]:
        return found
    best = study.best_trial
    params = space.sample(FixedTrial(best.params), depth)
    name = tags.trial_name(depth, best.number, replicate)
    found.update(
        best_val_loss=best.value,
        best_trial={"name": name, "number": best.number},
        best_config=space.config(params, depth).model_dump(mode="json", exclude_none=True),
        params=int(best.user_attrs["params"]) if "params" in best.user_attrs else None,
    )
    if run:
        ray_id = best.user_attrs["ray_trial_id"]
        run_id = trials.run_ids.get(ray_id) or _run_of(client, run, ray_id) or ""
        found["best_trial"]["mlflow_run_id"] = run_id or None
        store.log_batch(
            client,
            run,
            metrics=store.epoch_metrics(
                0, {"best_val_loss": best.value} | {f"trials_{k}": n for k, n in counts.items()}
            ),
            params=store.as_params({f"best.{k}": v for k, v in params.items()}),
            tags=store.as_tags({tags.BEST_TRIAL: name, tags.BEST_RUN_ID: run_id}),
        )
    return found


def _record_best(
    space: TrialSpace,
    depth: int,
    study,
    entry: DepthEntry,
    *,
    client,
    depth_run: str,
    trials: TrialRuns,
    data,
    storage_path: str,
    search: str,
    replicate: int | None = None,
) -> None:
    """Fills in the depth's best trial, attaches its checkpoint to its MLflow run, logs its model as an MLflow Model
    linked to that run, and tags it there."""
    best = study.best_trial
    ray_id = best.user_attrs["ray_trial_id"]
    params = space.sample(FixedTrial(best.params), depth)
    cfg = space.config(params, depth)
    _, checkpoint = trials.finals.get(ray_id, ({}, None))
    run_id = trials.run_ids.get(ray_id) or _run_of(client, depth_run, ray_id)
    entry.best_val_loss = best.value
    entry.best_config = cfg.model_dump(mode="json", exclude_none=True)
    entry.params = int(best.user_attrs["params"]) if "params" in best.user_attrs else None
    name = tags.trial_name(depth, best.number, replicate)
    best_trial = {"name": name, "number": best.number, "mlflow_run_id": run_id}
    entry.best_trial = best_trial | ({"replicate": replicate} if replicate is not None else {})
    entry.val_curve = trials.curves.get(ray_id, [])
    if checkpoint is not None and run_id:
        with checkpoint.as_directory() as folder:
            client.log_artifacts(run_id, folder)
            entry.model = _log_model(Path(folder), data, client=client, run_id=run_id, entry=entry, search=search)
    elif run_id and (saved := _saved_checkpoint(storage_path, ray_id)) is not None:
        client.log_artifacts(run_id, str(saved))  # the best trial ran before a resume
        entry.model = _log_model(saved, data, client=client, run_id=run_id, entry=entry, search=search)
    if run_id:
        client.set_tag(run_id, tags.BEST, "true")
    store.log_batch(
        client,
        depth_run,
        params=store.as_params({f"best.{k}": v for k, v in params.items()} | {"depth": depth}),
        tags=store.as_tags({tags.BEST_TRIAL: entry.best_trial.name, tags.BEST_RUN_ID: run_id or ""}),
    )


def _log_model(folder: Path, data, *, client, run_id: str, entry: DepthEntry, search: str) -> dict | None:
    """Logs the checkpoint's model as a pyfunc MLflow Model; returns its id, URI and own test loss (None without
    weights in the checkpoint)."""
    from stacktune.models.lstm import load_model
    from stacktune.models.train import evaluate

    weights = folder / "model.pt"
    if not weights.is_file():
        return None
    # The loss of these very weights on the test split, on the scaled data as every loss stacktune reports:
    # what a user of the model gets (the evaluation's figures are of retrainings over seeds).
    test_loss = evaluate(load_model(weights), data.test, task=data.task)["loss"]
    experiment_id = client.get_run(run_id).info.experiment_id
    model_id = log_best_model(
        client,
        weights=weights,
        data=data,
        run_id=run_id,
        experiment_id=experiment_id,
        search=search,
        depth=entry.depth,
        trial=entry.best_trial.name,
    )
    return {"model_id": model_id, "uri": f"models:/{model_id}", "test_loss": test_loss}


def summarise(
    spec: SearchSpec, studies: dict, *, client, tree: RunTree, trials: TrialRuns, data, storage_path: str
) -> Comparison:
    """Builds the comparison from the studies (read through Optuna) and logs each depth's best, as a trial and as
    an MLflow Model; `data` is the prepared dataset the search ran on."""
    task = data.task
    studies = by_cell(studies)
    space = TrialSpace.of(spec)  # turns each best trial's parameters back into its train config
    depths = [
        _depth_summary(
            spec,
            d,
            [studies[(d, r)] for r in range(1, spec.replicates + 1)],
            space=space,
            client=client,
            tree=tree,
            trials=trials,
            data=data,
            storage_path=storage_path,
        )
        for d in spec.depths
    ]
    comparison = Comparison(
        search=spec.name,
        experiment_id=tree.experiment_id,
        mlflow_run_id=tree.search_id,
        dataset=spec.dataset.model_dump(mode="json", exclude_none=True),
        task=task,
        trials_per_depth=spec.trials_per_depth,
        baseline=spec.baseline.model_dump() if spec.baseline is not None and spec.evaluation.enabled else None,
        depths=depths,
        budget=spec.budget.model_dump(),
        replicates=spec.replicates if spec.replicates > 1 else None,
    )
    comparison.curves = curves_sentence(depths)
    ranked = [d for d in depths if d.best_val_loss is not None]
    if ranked:
        overall = min(ranked, key=lambda d: d.best_val_loss)
        comparison.best_depth = overall.depth
        client.set_tag(tree.search_id, tags.BEST_DEPTH, str(comparison.best_depth))
        if overall.model:
            client.set_logged_model_tags(overall.model.model_id, {tags.OVERALL_BEST: "true"})
    best = {f"best_val_loss_d{d.depth}": d.best_val_loss for d in ranked}
    if ranked:
        best["best_val_loss"] = min(d.best_val_loss for d in ranked)
    store.log_batch(client, tree.search_id, metrics=store.epoch_metrics(0, best))
    return comparison


def curves_sentence(depths: list[DepthEntry]) -> str | None:
    """One sentence: do the depths' expected-best curves against training seconds cross, and who leads where."""
    curves = {
        e.depth: (e.expected_best_seconds, e.expected_best)
        for e in depths
        if e.expected_best_seconds and len(e.expected_best_seconds) == len(e.expected_best) and e.expected_best
    }
    if len(curves) < 2:
        return None
    crossings = curve_crossings(curves)
    if not crossings:
        final = {d: ys[-1] for d, (_, ys) in curves.items()}
        leader = min(final, key=final.get)
        return (
            "Against training seconds, the expected-best curves do not cross: "
            f"depth {leader} is ahead at every budget the depths share."
        )
    parts = [f"depths {a} and {b} at about {seconds:.0f} s" for a, b, seconds in crossings]
    return (
        "Against training seconds, the expected-best curves cross ("
        + "; ".join(parts)
        + "): which depth looks best depends on the training time allowed."
    )
