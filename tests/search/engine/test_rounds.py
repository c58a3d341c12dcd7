"""Jobs handed out in rounds, every round in one real Ray Tune run."""

from __future__ import annotations

import os
import time

import pytest
from ray import cloudpickle, tune
from ray.tune.search import Searcher

from stacktune.search.engine.ray_setup import start_ray
from stacktune.search.engine.rounds import JobRounds


def test_a_round_starts_only_when_the_last_has_ended_and_ends_when_no_jobs_come():
    searcher = JobRounds([{"n": 1}, {"n": 2}], lambda: [])
    assert searcher.suggest("a") == {"job": {"n": 1}}
    assert searcher.suggest("b") == {"job": {"n": 2}}
    assert searcher.suggest("c") is None  # the round is running: wait
    searcher.on_trial_complete("a")
    assert searcher.suggest("c") is None
    searcher.on_trial_complete("b", error=True)  # a failed job ends its round too
    assert searcher.suggest("c") == Searcher.FINISHED
    assert searcher.suggest("d") == Searcher.FINISHED


def test_what_is_left_to_hand_out_is_saved_with_the_experiment(tmp_path):
    searcher = JobRounds([{"n": 1}, {"n": 2}], lambda: [])
    searcher.suggest("a")
    searcher.save(str(tmp_path / "rounds.json"))
    restored = JobRounds([], lambda: [])
    restored.restore(str(tmp_path / "rounds.json"))
    assert restored.suggest("b") == {"job": {"n": 2}}


class _Driver:
    """Stands for the evaluation's state behind the next-round callable: a secret the pickle must not carry."""

    secret = "postgresql://u:hunter2-secret@db/optuna"

    def __init__(self):
        self.url = self.secret

    def next_jobs(self) -> list[dict]:
        return [{"n": 3}]


def test_the_pickle_ray_tune_saves_leaves_the_drivers_state_out():
    searcher = JobRounds([{"n": 1}], _Driver().next_jobs)
    saved = cloudpickle.dumps(searcher)  # as Ray Tune pickles its search algorithm into tuner.pkl
    assert _Driver.secret.encode() not in saved
    copy = cloudpickle.loads(saved)
    for rounds in (searcher, copy):
        assert rounds.suggest("a") == {"job": {"n": 1}}
        rounds.on_trial_complete("a")
    assert searcher.suggest("b") == {"job": {"n": 3}}  # the driver's searcher asks the driver for the next round
    assert copy.suggest("b") == Searcher.FINISHED  # the copy hands out what it held, then ends


@pytest.mark.slow
def test_rounds_run_in_one_tuner_and_keep_a_worker_between_rounds(tmp_path):
    start_ray(None)

    def job(config):  # defined here, so that Ray ships it by value to workers that cannot import the tests
        started = time.time()
        time.sleep(0.2)
        tune.report({"round": config["job"]["round"], "pid": os.getpid(), "started": started, "ended": time.time()})

    asked: list[int] = []
    results: list[dict] = []

    class Kept(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            results.append(trial.last_result)

    def next_round() -> list[dict]:
        # Asked only once every job of the round before has reported.
        asked.append(len(results))
        number = len(asked) + 1
        return [{"round": number} for _ in range(4)] if number <= 3 else []

    tuner = tune.Tuner(
        tune.with_resources(job, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=JobRounds([{"round": 1} for _ in range(4)], next_round), num_samples=-1, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="rounds", callbacks=[Kept()], verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == 12 and not grid.errors
    assert asked == [4, 8, 12]
    by_round = {n: [r for r in results if r["round"] == n] for n in (1, 2, 3)}
    for before, after in ((1, 2), (2, 3)):
        assert max(r["ended"] for r in by_round[before]) <= min(r["started"] for r in by_round[after])
        # Ray Tune keeps one finished worker while nothing is staged, and the next round reuses it.
        assert {r["pid"] for r in by_round[before]} & {r["pid"] for r in by_round[after]}
