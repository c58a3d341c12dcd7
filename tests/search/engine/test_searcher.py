"""The depth router against real Optuna studies: equal budgets, every outcome told."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from stacktune.search.engine.searcher import DepthSearcher
from stacktune.search.engine.studies import make_sampler
from stacktune.search.spec.schema import SearchSpec


def _spec(**overrides) -> SearchSpec:
    raw = {
        "name": "unit",
        "dataset": {"name": "sine", "window": 8},
        "depths": [1, 2, 6],
        "trials_per_depth": 3,
        "space": {"units": [8, 16], "lr": [1e-3, 1e-2], "dropout": [0.0, 0.3]},
    }
    return SearchSpec.model_validate({**raw, **overrides})


def _studies(spec: SearchSpec, storage=None) -> dict[int, optuna.Study]:
    storage = storage or optuna.storages.InMemoryStorage()
    return {
        d: optuna.create_study(study_name=f"s{d}", storage=storage, sampler=make_sampler(spec, d)) for d in spec.depths
    }


def test_routes_to_the_depth_furthest_behind_and_stops_at_the_budget():
    spec = _spec()
    searcher = DepthSearcher(spec, _studies(spec))
    depths = []
    for i in range(9):
        config = searcher.suggest(f"t{i}")
        depths.append(config["depth"])
    assert depths == [1, 2, 6] * 3
    assert searcher.suggest("t9") == Searcher.FINISHED


def test_each_depth_samples_one_width_per_layer_and_its_own_learning_rate():
    spec = _spec()
    searcher = DepthSearcher(spec, _studies(spec))
    for i in range(3):
        config = searcher.suggest(f"t{i}")
        params = config["params"]
        depth = config["depth"]
        assert [k for k in params if k.startswith("units_")] == [f"units_{j}" for j in range(depth)]
        assert all(params[f"units_{j}"] in (8, 16) for j in range(depth))
        assert 1e-3 <= params["lr"] <= 1e-2
        # A single layer has no dropout between layers to tune.
        assert (params["dropout"] == 0.0) if depth == 1 else (0.0 <= params["dropout"] <= 0.3)


@pytest.fixture(params=["memory", "journal", "postgres"])
def storage(request, tmp_path):
    """Every Optuna storage a search may use: in memory, a journal file, PostgreSQL."""
    if request.param == "memory":
        return optuna.storages.InMemoryStorage()
    if request.param == "journal":
        return JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    return optuna.storages.RDBStorage(request.getfixturevalue("postgres_url"))


def test_completed_pruned_and_failed_trials_are_all_told_to_their_study(storage):
    spec = _spec(depths=[2], trials_per_depth=4)
    studies = _studies(spec, storage)
    searcher = DepthSearcher(spec, studies)
    for i in range(4):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {"best_val_loss": 0.5, "state": "completed"})
    searcher.on_trial_complete("t1", {"best_val_loss": 0.9, "state": "pruned"})
    searcher.on_trial_complete("t2", {"best_val_loss": float("nan"), "state": "failed"})
    searcher.on_trial_complete("t3", None, error=True)
    states = [t.state for t in studies[2].get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL]
    assert studies[2].best_value == pytest.approx(0.5)
    assert all(t.user_attrs["ray_trial_id"] == f"t{i}" for i, t in enumerate(studies[2].get_trials()))


def test_finished_trials_of_a_resumed_study_count_against_the_budget(storage):
    spec = _spec(depths=[1], trials_per_depth=3)
    studies = _studies(spec, storage)
    studies[1].optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2, log=True), n_trials=2)
    searcher = DepthSearcher(spec, studies)
    assert searcher.suggest("a")["depth"] == 1
    assert searcher.suggest("b") == Searcher.FINISHED


def test_same_seed_gives_the_same_first_suggestions():
    spec = _spec()
    first = [DepthSearcher(spec, _studies(spec)).suggest("x")["params"] for _ in range(2)]
    assert first[0] == first[1]


def _finish(searcher: DepthSearcher, trial_id: str, seconds: float) -> None:
    from stacktune.search.contracts import TrialResult

    result = TrialResult(final=True, epoch=3, best_val_loss=0.5, train_seconds=seconds, params=10, state="completed")
    searcher.on_trial_complete(trial_id, result.to_report())


def test_a_seconds_budget_gives_each_depth_the_same_training_time_not_the_same_trials():
    spec = _spec(depths=[1, 6], trials_per_depth=50, budget={"kind": "seconds", "per_depth": 10})
    studies = _studies(spec)
    searcher = DepthSearcher(spec, studies)
    cost = {1: 1.0, 6: 4.0}  # a deep trial takes four times as long
    asked = 0
    while (config := searcher.suggest(f"t{asked}")) not in (Searcher.FINISHED, None):
        _finish(searcher, f"t{asked}", cost[config["depth"]])
        asked += 1
    trials = {d: len(s.trials) for d, s in studies.items()}
    spent = {d: sum(t.user_attrs["train_seconds"] for t in s.trials) for d, s in studies.items()}
    assert trials == {1: 10, 6: 3}  # 10 x 1 s against 3 x 4 s: the last deep trial overshoots by 2 s
    assert spent == {1: 10.0, 6: 12.0}
    assert searcher.remaining() == 0


def test_a_seconds_budget_keeps_asking_while_running_trials_have_not_reported():
    spec = _spec(depths=[1], trials_per_depth=50, budget={"kind": "seconds", "per_depth": 5})
    searcher = DepthSearcher(spec, _studies(spec))
    # Two trials start before either reports: both count once they do, and the second overshoots.
    assert searcher.suggest("a")["depth"] == 1 and searcher.suggest("b")["depth"] == 1
    _finish(searcher, "a", 4.0)
    assert searcher.suggest("c")["depth"] == 1  # 4 s of 5: still owed time
    _finish(searcher, "b", 3.0)
    assert searcher.suggest("d") == Searcher.FINISHED  # 7 s: done, while c still runs
    _finish(searcher, "c", 3.0)
    assert searcher.remaining() == 0


@pytest.mark.parametrize(
    ("budget", "message"),
    [({"kind": "seconds"}, "needs per_depth"), ({"kind": "trials", "per_depth": 5}, "trials_per_depth")],
)
def test_a_budget_says_what_it_needs(budget, message):
    with pytest.raises(ValueError, match=message):
        _spec(budget=budget)
