"""Early stopping within a depth, with Ray Tune's own ASHA: a deep trial is judged only against deep trials."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from stacktune.search.engine.pruning import make_scheduler
from stacktune.search.spec.schema import SearchSpec


def _spec(**pruning) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": "p",
            "dataset": {"name": "sine", "window": 8},
            "depths": [1, 6],
            "trials_per_depth": 8,
            "train": {"epochs": 9},
            "pruning": {"kind": "asha", "grace_epochs": 1, "reduction": 3, **pruning},
        }
    )


def _trial(depth: int, number: int) -> Trial:
    return Trial("run_trial", config={"depth": depth, "number": number, "params": {}}, stub=True)


def _report(scheduler, trial, epoch: int, loss: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "best_val_loss": loss, "val_loss": loss})


def test_a_slow_deep_trial_is_not_stopped_by_fast_shallow_trials():
    scheduler = make_scheduler(_spec())
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
    scheduler = make_scheduler(_spec())
    deep = [_trial(6, i) for i in range(3)]
    for t in deep:
        scheduler.on_trial_add(None, t)
    assert _report(scheduler, deep[0], 1, 0.5) == TrialScheduler.CONTINUE
    assert _report(scheduler, deep[1], 1, 0.4) == TrialScheduler.CONTINUE
    assert _report(scheduler, deep[2], 1, 3.0) == TrialScheduler.STOP
    assert scheduler.pruned == {deep[2].trial_id}


def test_the_final_report_is_never_stopped_and_pruning_can_be_off():
    scheduler = make_scheduler(_spec())
    t = _trial(1, 0)
    scheduler.on_trial_add(None, t)
    assert (
        scheduler.on_trial_result(None, t, {"final": True, "epoch": 9, "best_val_loss": 1.0}) == TrialScheduler.CONTINUE
    )
    assert make_scheduler(_spec(kind="none")) is None
