"""A Ray Tune Searcher that hands out jobs a round at a time, all rounds in one Ray Tune run.

The evaluation adds seeds in rounds until the verdict is decided. One run for every round keeps the
trial workers that Ray Tune reuses (and the torch each has imported) from one round to the next, where a
run per round would start them again every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ray.tune.search import Searcher


class JobRounds(Searcher):
    """Suggests `{"job": job}` for each job of a round; once every job of the round has ended, asks `next_round`
    for the next round's jobs, and ends the run when it returns none."""

    def __init__(self, first: list[dict], next_round: Callable[[], list[dict]]):
        super().__init__()
        self._queue = list(first)
        self._next_round = next_round
        self._running: set[str] = set()
        self._over = False

    def suggest(self, trial_id: str):
        if not self._queue:
            if self._running:
                return None  # the round is still running: nothing to start until it is over
            self._queue = [] if self._over else list(self._next_round())
            if not self._queue:
                self._over = True
                return Searcher.FINISHED
        self._running.add(trial_id)
        return {"job": self._queue.pop(0)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._running.discard(trial_id)

    def __getstate__(self) -> dict:
        # Ray Tune pickles its searcher into the experiment folder. The callable is the driver's: it holds the
        # evaluation's state, the spec with the study storage's URL (which may hold a password) among it.
        # A copy without it hands out the round it holds and then ends (`list()` is no more jobs).
        return {**self.__dict__, "_next_round": list}

    def save(self, checkpoint_path: str) -> None:
        # Ray Tune saves its searcher with the experiment; the jobs still to hand out are this one's whole state.
        Path(checkpoint_path).write_text(json.dumps({"queue": self._queue, "over": self._over}))

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self._queue, self._over = state["queue"], state["over"]
