"""Progress lines on stderr, so that stdout stays the command's answer alone."""

from __future__ import annotations

import sys

from ..progress import DepthTally, Progress


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class StderrProgress(Progress):
    """One line when the trials start, one per finished trial and restart, one when evaluation starts."""

    def search_started(self, *, name: str, depths: list[int], budget: str, resume: bool) -> None:
        _say(f"{'resuming' if resume else 'searching'} {name}: depths {depths}, {budget}")

    def trial_finished(self, depth: int, tally: DepthTally, *, trials: int, seconds: float | None) -> None:
        best = f"{tally.best:.5f}" if tally.best < float("inf") else "-"
        done = (
            f"{tally.done}/{trials} trials"
            if seconds is None
            else f"{tally.done} trials, {tally.seconds:.0f}/{seconds:g} s"
        )
        _say(
            f"  depth {depth}: {done} "
            f"({tally.completed} completed, {tally.pruned} pruned, {tally.failed} failed), best val_loss {best}"
        )

    def trial_restarted(self, name: str, reason: str) -> None:
        _say(f"  {name}: restarting after a failure ({reason})")

    def evaluation_started(self, *, jobs: int, seeds: int, round: int | None = None) -> None:
        which = "" if round is None else f", round {round}"
        _say(f"evaluating on the test split{which}: {jobs} retrainings ({seeds} seeds each)")
