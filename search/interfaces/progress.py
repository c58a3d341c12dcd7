"""Progress lines on stderr, so that stdout stays the command's answer alone."""

from __future__ import annotations

import sys

from ..progress import DepthTally, Progress


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class StderrProgress(Progress):
    """One line when the trials start, one per finished trial and restart, one when evaluation starts."""

    def search_started(self, *, name: str, depths: list[int], trials_per_depth: int, owed: int, resume: bool) -> None:
        _say(
            f"{'resuming' if resume else 'searching'} {name}: depths {depths}, "
            f"{trials_per_depth} trials each ({owed} to run)"
        )

    def trial_finished(self, depth: int, tally: DepthTally, *, trials_per_depth: int) -> None:
        best = f"{tally.best:.5f}" if tally.best < float("inf") else "-"
        _say(
            f"  depth {depth}: {tally.done}/{trials_per_depth} trials "
            f"({tally.completed} completed, {tally.pruned} pruned, {tally.failed} failed), best val_loss {best}"
        )

    def trial_restarted(self, name: str, reason: str) -> None:
        _say(f"  {name}: restarting after a failure ({reason})")

    def evaluation_started(self, *, jobs: int, seeds: int) -> None:
        _say(f"evaluating on the test split: {jobs} retrainings ({seeds} seeds each)")
