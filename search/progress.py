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

    @property
    def done(self) -> int:
        return self.completed + self.pruned + self.failed


class Progress:
    """Receives a search's milestones; every method does nothing unless a subclass says otherwise."""

    def search_started(self, *, name: str, depths: list[int], trials_per_depth: int, owed: int, resume: bool) -> None:
        """The trials are about to run: `owed` of them (fewer than all on resume)."""

    def trial_finished(self, depth: int, tally: DepthTally, *, trials_per_depth: int) -> None:
        """A trial of `depth` ended; `tally` counts that depth's finished trials."""

    def trial_restarted(self, name: str, reason: str) -> None:
        """Ray Tune restarts trial `name` after its worker or node died."""

    def evaluation_started(self, *, jobs: int, seeds: int) -> None:
        """The retrainings on the test split are about to run."""
