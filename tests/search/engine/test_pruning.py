"""Early stopping within a depth, with Ray Tune's ASHA and Hyperband or each depth's Optuna pruner: a deep trial is
judged only against deep trials."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from stacktune.search.engine.pruning import make_scheduler
from stacktune.search.engine.searcher import DepthSearcher
from stacktune.search.engine.studies import prepare_studies
from stacktune.search.spec.schema import SearchSpec


def _spec(**pruning) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": "p",
            "dataset": {"name": "sine", "window": 8},
            "depths": [1, 6],
            "trials_per_depth": 8,
            "train": {"epochs": 9},
            "sampler": {"n_startup_trials": 2},
            "pruning": {"kind": "asha", "grace_epochs": 1, "reduction": 3, **pruning},
        }
    )


def _scheduler(spec: SearchSpec):
    searcher = DepthSearcher(spec, prepare_studies(spec, optuna.storages.InMemoryStorage(), resume=False))
    return make_scheduler(spec, searcher), searcher


def _trial(depth: int, number: int) -> Trial:
    return Trial("run_trial", config={"depth": depth, "number": number, "params": {}}, stub=True)


def _report(scheduler, trial, epoch: int, loss: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "best_val_loss": loss, "val_loss": loss})


def test_a_slow_deep_trial_is_not_stopped_by_fast_shallow_trials():
    scheduler, _ = _scheduler(_spec())
    shallow = [_trial(1, i) for i in range(4)]
    deep = _trial(6, 0)
    for t in [*shallow, deep]:
        scheduler.on_trial_add(None, t)
    for i, t in enumerate(shallow):
        _report(scheduler, t, 1, 0.10 + 0.01 * i)
    # Far worse than every shallow trial at the same epoch, but the first of its depth.
    assert _report(scheduler, deep, 1, 5.0) == TrialScheduler.CONTINUE
    assert deep.trial_id not in scheduler.pruned


def test_a_deep_trial_worse_than_other_deep_trials_is_stopped_and_remembered():
    scheduler, _ = _scheduler(_spec())
    deep = [_trial(6, i) for i in range(3)]
    for t in deep:
        scheduler.on_trial_add(None, t)
    assert _report(scheduler, deep[0], 1, 0.5) == TrialScheduler.CONTINUE
    assert _report(scheduler, deep[1], 1, 0.4) == TrialScheduler.CONTINUE
    assert _report(scheduler, deep[2], 1, 3.0) == TrialScheduler.STOP
    assert scheduler.pruned == {deep[2].trial_id}


def test_the_final_report_is_never_stopped_and_pruning_can_be_off():
    scheduler, _ = _scheduler(_spec())
    t = _trial(1, 0)
    scheduler.on_trial_add(None, t)
    assert (
        scheduler.on_trial_result(None, t, {"final": True, "epoch": 9, "best_val_loss": 1.0}) == TrialScheduler.CONTINUE
    )
    assert _scheduler(_spec(kind="none"))[0] is None


def test_hyperband_runs_brackets_within_each_depth():
    scheduler, _ = _scheduler(_spec(kind="hyperband", brackets=3))
    shallow, deep = _trial(1, 0), _trial(6, 0)
    for t in (shallow, deep):
        scheduler.on_trial_add(None, t)
    inner = {scheduler._for(t).debug_string().count("Bracket:") for t in (shallow, deep)}
    assert inner == {3} and scheduler._for(shallow) is not scheduler._for(deep)


def _run(searcher, scheduler, trial_id: str, losses: list[float]) -> str:
    """Suggests `trial_id`, reports its epochs until the scheduler stops it, completes it; returns its study state."""
    config = searcher.suggest(trial_id)
    trial = Trial("run_trial", config=config, stub=True, trial_id=trial_id)
    result: dict = {}
    for epoch, loss in enumerate(losses, start=1):
        result = {"epoch": epoch, "val_loss": loss, "best_val_loss": loss, "train_seconds": 0.1 * epoch}
        decision = scheduler.on_trial_result(None, trial, result)
        searcher.on_trial_result(trial_id, result)
        if decision == TrialScheduler.STOP:
            break
    searcher.on_trial_complete(trial_id, result={**result, "final": True, "state": "completed"})
    depth = config["depth"]
    return searcher._studies[(depth, 1)].trials[-1].state, depth


def test_the_median_pruner_of_a_depths_study_stops_a_trial_worse_than_that_depths_median():
    spec = _spec(kind="median", grace_epochs=1)
    spec.train.epochs = 3
    scheduler, searcher = _scheduler(spec)
    states = []
    # Trials alternate between the depths; each depth's first two are its pruner's start-up trials.
    for i, losses in enumerate(([1.0, 0.5, 0.4], [9.0, 8.0, 7.0], [1.1, 0.6, 0.5], [9.5, 8.5, 7.5])):
        states.append(_run(searcher, scheduler, f"t{i}", losses))
    assert [s for s, _ in states] == [TrialState.COMPLETE] * 4
    # Depth 1: worse than its depth's median at epoch 2 -> pruned there, though better than every deep trial.
    state, depth = _run(searcher, scheduler, "t4", [1.0, 5.0, 5.0])
    assert (state, depth) == (TrialState.PRUNED, 1) and "t4" in scheduler.pruned
    study = searcher._studies[(1, 1)]
    assert study.trials[-1].intermediate_values == {1: 1.0, 2: 5.0}  # each epoch told once, none after the stop
    # Depth 6: far worse than depth 1's trials, but at its own depth's median -> goes on.
    state, depth = _run(searcher, scheduler, "t5", [9.0, 8.0, 7.0])
    assert (state, depth) == (TrialState.COMPLETE, 6) and "t5" not in scheduler.pruned
    # The last epoch is never stopped: the trial has trained all it will and reports its weights.
    config = searcher.suggest("t6")
    last = Trial("run_trial", config=config, stub=True, trial_id="t6")
    assert config["depth"] == 1
    bad = {"epoch": spec.train.epochs, "val_loss": 50.0, "best_val_loss": 50.0}
    assert scheduler.on_trial_result(None, last, bad) == TrialScheduler.CONTINUE
