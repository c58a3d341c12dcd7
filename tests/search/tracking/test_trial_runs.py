"""The TrialRuns callback: one MLflow run per trial under its depth run, each epoch logged, closed once.

Ray Tune's callback methods are called directly, in the order Ray Tune calls them, on a real MLflow store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from stacktune.search.contracts import TrialResult
from stacktune.search.progress import DepthTally, Progress
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.tracking import store, tags
from stacktune.search.tracking.buffer import BufferedWriter
from stacktune.search.tracking.run_tree import open_run_tree
from stacktune.search.tracking.trial_runs import TrialRuns


@dataclass
class FakeTrial:
    """What TrialRuns reads of a Ray Tune Trial."""

    trial_id: str
    config: dict
    last_result: dict = field(default_factory=dict)
    checkpoint: object = None
    error_file: str | None = None
    error: str | None = None

    def get_error(self):
        return self.error


class RecordingProgress(Progress):
    def __init__(self):
        self.finished: list[tuple[int, dict, int]] = []
        self.restarted: list[tuple[str, str]] = []

    def trial_finished(self, depth: int, tally: DepthTally, *, trials: int, seconds: float | None) -> None:
        snapshot = {"completed": tally.completed, "pruned": tally.pruned, "failed": tally.failed, "best": tally.best}
        self.finished.append((depth, snapshot, trials))

    def trial_restarted(self, name: str, reason: str) -> None:
        self.restarted.append((name, reason))


def _params(depth: int, units: int = 16) -> dict:
    return {
        **{f"units_{i}": units + i for i in range(depth)},
        "lr": 0.003,
        "dropout": 0.1 if depth > 1 else 0.0,
        "weight_decay": 0.0,
        "batch_size": 32,
    }


def _trial(trial_id: str, depth: int, number: int) -> FakeTrial:
    return FakeTrial(trial_id, {"depth": depth, "number": number, "params": _params(depth)})


@pytest.fixture(scope="module")
def client(tmp_path_factory, mlflow_store):
    """One MLflow store for the module (creating its tables takes seconds); each test has its own experiment."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the store's default artifact root lands in the test's folder
        yield store.client(mlflow_store(folder))


@pytest.fixture
def setup(client, request):
    spec = SearchSpec.model_validate(
        {"name": request.node.name[:100], "dataset": {"name": "sine"}, "depths": [1, 2], "trials_per_depth": 3}
    )
    tree = open_run_tree(client, spec, resume=False)
    return spec, client, tree


def _callback(spec, client, tree, **kwargs) -> TrialRuns:
    return TrialRuns(client=client, experiment_id=tree.experiment_id, spec=spec, depth_runs=tree.depth_runs, **kwargs)


def _epochs(callback: TrialRuns, trial: FakeTrial, losses: list[float], *, node: str = "node-a", first: int = 1):
    best = float("inf")
    for epoch, loss in enumerate(losses, start=first):
        best = min(best, loss)
        report = TrialResult(
            epoch=epoch,
            best_val_loss=best,
            train_seconds=0.1 * epoch,
            node_id=node,
            train_loss=loss * 1.5,
            val_loss=loss,
        ).to_report()
        # Ray Tune adds keys of its own.
        result = {**report, "training_iteration": epoch, "trial_id": trial.trial_id, "done": False}
        callback.on_trial_result(iteration=epoch, trials=[], trial=trial, result=result)
        trial.last_result = result


def _final(callback: TrialRuns, trial: FakeTrial, *, epoch: int, best: float, state: str = "completed", reason=""):
    report = TrialResult(
        epoch=epoch,
        best_val_loss=best,
        final=True,
        best_epoch=epoch - 1,
        params=321,
        state=state,
        reason=reason,
        node_id="node-a",
    ).to_report()
    result = {**report, "training_iteration": epoch + 1, "done": True}
    callback.on_trial_result(iteration=epoch + 1, trials=[], trial=trial, result=result)
    trial.last_result = result


def _trial_runs(client, tree) -> dict[str, object]:
    runs = client.search_runs([tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}'")
    return {run.info.run_name: run for run in runs}


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_a_completed_and_a_failed_trial_each_get_one_run_under_their_depth(setup):
    spec, client, tree = setup
    progress = RecordingProgress()
    callback = _callback(spec, client, tree, progress=progress)

    good = _trial("a0001", depth=1, number=0)
    callback.on_trial_start(iteration=0, trials=[], trial=good)
    losses = [0.9, 0.5, 0.6]
    _epochs(callback, good, losses)
    _final(callback, good, epoch=3, best=0.5)
    callback.on_trial_complete(iteration=5, trials=[], trial=good)

    bad = _trial("b0002", depth=2, number=7)
    callback.on_trial_start(iteration=6, trials=[], trial=bad)
    _epochs(callback, bad, [1.2], node="node-b")
    bad.error = "Traceback (most recent call last):\n  File 'x.py', line 1\nRuntimeError: worker blew up\n"
    callback.on_trial_error(iteration=7, trials=[], trial=bad)

    callback.on_experiment_end(trials=[])  # its writing thread has written everything
    run_ids = callback.run_ids

    runs = _trial_runs(client, tree)
    assert set(runs) == {tags.trial_name(1, 0), tags.trial_name(2, 7)} == {"d1-t00", "d2-t07"}
    done, failed = runs["d1-t00"], runs["d2-t07"]
    assert run_ids == {"a0001": done.info.run_id, "b0002": failed.info.run_id}

    # Where each run sits and what it says it is.
    for run, depth, number, ray_id in ((done, 1, 0, "a0001"), (failed, 2, 7, "b0002")):
        t = run.data.tags
        assert t[tags.PARENT_RUN_ID] == tree.depth_runs[depth]
        assert t[tags.ROLE] == tags.ROLE_TRIAL
        assert t[tags.DEPTH] == str(depth)
        assert t[tags.SEARCH] == spec.name
        assert t[tags.TRIAL_NUMBER] == str(number)
        assert t[tags.RAY_TRIAL_ID] == ray_id
        assert run.info.end_time is not None
        p = run.data.params
        assert [p[f"units_{i}"] for i in range(depth)] == [str(16 + i) for i in range(depth)]
        assert f"units_{depth}" not in p
        assert p["depth"] == str(depth) and p["lr"] == "0.003" and p["batch_size"] == "32"
        assert p["dataset"] == "sine" and p["epochs"] == str(spec.train.epochs)

    assert done.info.status == "FINISHED"
    assert done.data.tags[tags.STATE] == "completed"
    assert tags.REASON not in done.data.tags
    assert done.data.tags[tags.NODE_ID] == "node-a"
    assert _history(client, done.info.run_id, "val_loss") == [(1, 0.9), (2, 0.5), (3, 0.6)]
    assert [v for _, v in _history(client, done.info.run_id, "train_loss")] == pytest.approx([1.35, 0.75, 0.9])
    assert _history(client, done.info.run_id, "best_val_loss") == [(3, 0.5)]
    assert _history(client, done.info.run_id, "n_params") == [(3, 321.0)]
    assert "val_accuracy" not in done.data.metrics  # a regression trial reports none

    assert failed.info.status == "FAILED"
    assert failed.data.tags[tags.STATE] == "failed"
    assert failed.data.tags[tags.REASON] == "RuntimeError: worker blew up"
    assert failed.data.tags[tags.NODE_ID] == "node-b"
    assert _history(client, failed.info.run_id, "val_loss") == [(1, 1.2)]

    # Nothing else was created, and the depth runs are untouched parents.
    all_runs = client.search_runs([tree.experiment_id])
    assert len(all_runs) == 1 + len(spec.depths) + 2

    assert callback.curves == {"a0001": losses, "b0002": [1.2]}
    assert callback.finals["a0001"][0]["best_val_loss"] == 0.5 and callback.finals["a0001"][1] is None
    assert callback.tally[1].completed == 1 and callback.tally[1].failed == 0 and callback.tally[1].best == 0.5
    assert callback.tally[2].failed == 1 and callback.tally[2].completed == 0 and callback.tally[2].done == 1
    assert progress.finished == [
        (1, {"completed": 1, "pruned": 0, "failed": 0, "best": 0.5}, 3),
        (2, {"completed": 0, "pruned": 0, "failed": 1, "best": float("inf")}, 3),
    ]


def test_a_restarted_trial_keeps_its_run_and_counts_its_restarts(setup, tmp_path):
    spec, client, tree = setup
    progress = RecordingProgress()
    # Written in this thread, so that the store can be read between the events.
    callback = _callback(spec, client, tree, progress=progress, writer=BufferedWriter(client))

    trial = _trial("c0003", depth=2, number=1)
    callback.on_trial_start(iteration=0, trials=[], trial=trial)
    _epochs(callback, trial, [1.0, 0.8])

    # The worker died; Ray Tune's error sits in the driver's copy of the error file only.
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback ...\nray.exceptions.NodeDiedError: node gone\n")
    trial.error_file = str(error_file)
    callback.on_trial_recover(iteration=3, trials=[], trial=trial)
    run_id = callback.run_ids["c0003"]
    assert client.get_run(run_id).data.tags[tags.RESTARTS] == "1"
    assert callback.curves.get("c0003") is None  # the new attempt's curve replaces the lost one's

    trial.error_file, trial.error = None, None
    callback.on_trial_recover(iteration=4, trials=[], trial=trial)
    assert callback.run_ids["c0003"] == run_id
    assert client.get_run(run_id).data.tags[tags.RESTARTS] == "2"
    assert callback.restarts == {"c0003": 2}

    callback.on_trial_start(iteration=5, trials=[], trial=trial)
    _epochs(callback, trial, [0.9, 0.7, 0.4], node="node-c")
    _final(callback, trial, epoch=3, best=0.4)
    callback.on_trial_complete(iteration=9, trials=[], trial=trial)
    callback.on_experiment_end(trials=[])

    runs = _trial_runs(client, tree)
    assert list(runs) == ["d2-t01"]
    run = runs["d2-t01"]
    assert run.info.run_id == run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags[tags.RESTARTS] == "2"
    assert run.data.tags[tags.RESTART_REASON]  # some reason, even without an error to read
    assert run.data.tags[tags.STATE] == "completed"
    assert run.data.tags[tags.NODE_ID] == "node-c"  # where the last attempt ran
    assert callback.curves["c0003"] == [0.9, 0.7, 0.4]
    assert [name for name, _ in progress.restarted] == ["d2-t01", "d2-t01"]
    assert progress.restarted[0][1] == "ray.exceptions.NodeDiedError: node gone"
    assert progress.finished == [(2, {"completed": 1, "pruned": 0, "failed": 0, "best": 0.4}, 3)]


def test_a_pruned_trial_ends_finished_and_tagged_pruned(setup):
    spec, client, tree = setup
    progress = RecordingProgress()
    callback = _callback(spec, client, tree, progress=progress, pruned={"p0004"})

    trial = _trial("p0004", depth=1, number=2)
    callback.on_trial_start(iteration=0, trials=[], trial=trial)
    _epochs(callback, trial, [2.0, 1.9])
    callback.on_trial_complete(iteration=2, trials=[], trial=trial)
    callback.on_experiment_end(trials=[])

    run = _trial_runs(client, tree)["d1-t02"]
    assert run.info.status == "FINISHED"
    assert run.data.tags[tags.STATE] == "pruned"
    assert _history(client, run.info.run_id, "val_loss") == [(1, 2.0), (2, 1.9)]
    assert callback.tally[1].pruned == 1 and callback.tally[1].completed == 0
    assert progress.finished == [(1, {"completed": 0, "pruned": 1, "failed": 0, "best": float("inf")}, 3)]


def test_a_diverged_trial_ends_failed_with_its_reason(setup):
    spec, client, tree = setup
    progress = RecordingProgress()
    callback = _callback(spec, client, tree, progress=progress)
    trial = _trial("d0005", depth=1, number=3)
    callback.on_trial_start(iteration=0, trials=[], trial=trial)
    _epochs(callback, trial, [3.0])
    # A diverged trial returns normally; its final report (as the trainable writes it) says it failed and why.
    _final(callback, trial, epoch=2, best=float("inf"), state="failed", reason="val_loss is nan at epoch 2")
    callback.on_trial_complete(iteration=3, trials=[], trial=trial)
    callback.on_experiment_end(trials=[])

    run = _trial_runs(client, tree)["d1-t03"]
    assert run.info.status == "FAILED"
    assert run.data.tags[tags.STATE] == "failed"
    assert run.data.tags[tags.REASON] == "val_loss is nan at epoch 2"
    assert "best_val_loss" not in run.data.metrics  # infinite: not logged
    assert _history(client, run.info.run_id, "n_params") == [(2, 321.0)]
    assert callback.tally[1].failed == 1 and callback.tally[1].completed == 0
    assert progress.finished == [(1, {"completed": 0, "pruned": 0, "failed": 1, "best": float("inf")}, 3)]


def test_open_runs_are_closed_when_the_search_is_interrupted(setup):
    spec, client, tree = setup
    callback = _callback(spec, client, tree)
    ended, cut = _trial("e0006", depth=1, number=4), _trial("e0007", depth=2, number=4)
    for trial in (ended, cut):
        callback.on_trial_start(iteration=0, trials=[], trial=trial)
        _epochs(callback, trial, [1.0])
    _final(callback, ended, epoch=1, best=1.0)
    callback.on_trial_complete(iteration=2, trials=[], trial=ended)

    callback.close_open_runs()

    runs = _trial_runs(client, tree)
    assert runs["d1-t04"].info.status == "FINISHED"
    assert runs["d2-t04"].info.status == "KILLED"
    # tagged as a resume tags the trials that a killed driver left open
    assert runs["d2-t04"].data.tags["stacktune.state"] == "interrupted"
    assert runs["d1-t04"].data.tags["stacktune.state"] == "completed"


class _StopsAtReopen:
    """The real client, but a stop signal lands while the resume marks its `stop_at`-th run RUNNING again."""

    def __init__(self, client, stop_at: int):
        self._client, self._left = client, stop_at

    def update_run(self, run_id, status=None, name=None):
        if status == "RUNNING":
            self._left -= 1
            if self._left == 0:
                raise KeyboardInterrupt
        return self._client.update_run(run_id, status=status, name=name)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_resume_stopped_while_it_reopens_the_runs_leaves_them_as_they_were(client, stop_at):
    from stacktune.search.tracking.run_tree import close_run_tree

    spec = SearchSpec.model_validate(
        {"name": f"reopen-{stop_at}", "dataset": {"name": "sine"}, "depths": [1, 2], "trials_per_depth": 3}
    )
    tree = open_run_tree(client, spec, resume=False)
    close_run_tree(client, tree, "KILLED")  # the earlier attempt, stopped by Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        open_run_tree(_StopsAtReopen(client, stop_at), spec, resume=True)
    assert [client.get_run(run_id).info.status for run_id in tree.run_ids] == ["KILLED"] * 3
    # and a resume that is not stopped takes up the same runs
    resumed = open_run_tree(client, spec, resume=True)
    assert resumed.search_id == tree.search_id and resumed.depth_runs == tree.depth_runs
    assert [client.get_run(run_id).info.status for run_id in tree.run_ids] == ["RUNNING"] * 3


class _StopsAtCreate:
    """The real client, but a stop signal lands as a new search asks for its `stop_at`-th run."""

    def __init__(self, client, stop_at: int):
        self._client, self._left = client, stop_at

    def create_run(self, *args, **kwargs):
        self._left -= 1
        if self._left == 0:
            raise KeyboardInterrupt
        return self._client.create_run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("stop_at", [2, 3, 4, 6])
def test_a_new_search_stopped_while_it_makes_its_runs_leaves_none_running(client, stop_at):
    spec = SearchSpec.model_validate(
        {
            "name": f"made-{stop_at}",
            "dataset": {"name": "sine"},
            "depths": [1, 2],
            "trials_per_depth": 3,
            "replicates": 2,  # a replicate run below each depth run: runs two levels down
        }
    )
    with pytest.raises(KeyboardInterrupt):
        open_run_tree(_StopsAtCreate(client, stop_at), spec, resume=False)
    experiment = client.get_experiment_by_name(spec.name)
    made = client.search_runs([experiment.experiment_id])
    assert len(made) == stop_at - 1
    assert {r.info.status for r in made} == {"KILLED"}
    # and a resume takes up the search run that was made
    (search,) = [r for r in made if r.data.tags.get("stacktune.role") == "search"]
    resumed = open_run_tree(client, spec, resume=True)
    assert resumed.search_id == search.info.run_id
    assert client.get_run(search.info.run_id).info.status == "RUNNING"
