"""What a running search tells whoever watches it. The base class stays silent (the Python API's
default); the CLI passes one that writes to stderr (`interfaces.progress`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DepthTally:
    """One depth's finished trials so far, as the progress lines show them."""

    completed: int = 0
    pruned: int = 0
    failed: int = 0
    best: float = float("inf")
    seconds: float = 0.0  # training seconds of the finished trials

    @property
    def done(self) -> int:
        return self.completed + self.pruned + self.failed

    def __add__(self, other: DepthTally) -> DepthTally:
        """The trials of both tallies: a resumed search's earlier ones and those run since."""
        return DepthTally(
            completed=self.completed + other.completed,
            pruned=self.pruned + other.pruned,
            failed=self.failed + other.failed,
            best=min(self.best, other.best),
            seconds=self.seconds + other.seconds,
        )


class Progress:
    """Receives a search's milestones; every method does nothing unless a subclass says otherwise."""

    def trials_kept(self, tallies: dict[int, DepthTally]) -> None:
        """A resumed search had finished these trials of each depth before it stopped (told before `search_started`);
        the tallies `trial_finished` receives count only the trials run since."""

    def search_started(
        self, *, name: str, depths: list[int], budget: str, resume: bool, owed: int = 0, seconds: float | None = None
    ) -> None:
        """The trials are about to run; `budget` says what each depth gets (and what is left on resume), `owed` how
        many trials are still to run, `seconds` each depth's training seconds with a seconds budget."""

    def trial_finished(self, depth: int, tally: DepthTally, *, trials: int, seconds: float | None) -> None:
        """A trial of `depth` ended; `tally` counts the depth's finished trials, of `trials` (or of `seconds` of
        training, with a seconds budget)."""

    def trial_restarted(self, name: str, reason: str) -> None:
        """Ray Tune restarts trial `name` after its worker or node died."""

    def evaluation_started(self, *, jobs: int, seeds: int, round: int | None = None, origins: int = 1) -> None:
        """The retrainings on the test split (of one round, with `seeds: auto`) are about to run: `seeds` for each
        configuration, each at `origins` data origins."""

    def retraining_finished(self, *, done: int, jobs: int, depth: int, kind: str, seed: int, test_loss) -> None:
        """The `done`-th of the round's `jobs` retrainings ended (`kind` tuned or fixed; `test_loss` None when it
        failed or diverged)."""

    def close(self) -> None:
        """The search is over (finished, failed or interrupted): whatever is drawn is finished off."""
