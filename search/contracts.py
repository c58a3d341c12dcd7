"""What a trial reports: one definition, written by the trainable and read by the searcher, the
scheduler and the MLflow callback.

Ray Tune carries results as dicts (with keys of its own added); `TrialResult.to_report` makes the
dict a trial reports and `TrialResult.of` reads one back, so no stage spells the keys itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

# The metric Ray Tune and the searcher rank trials by: the lowest validation loss so far.
METRIC = "best_val_loss"

TrialState = Literal["completed", "failed"]


@dataclass(frozen=True)
class TrialResult:
    """One report of a trial: an epoch's losses, or (``final``) the trial's outcome."""

    epoch: int = 0
    best_val_loss: float = math.inf
    train_seconds: float = 0.0
    node_id: str = ""
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    final: bool = False
    best_epoch: int | None = None
    params: int | None = None
    state: TrialState | None = None  # on the final report
    reason: str = ""  # why a trial failed or diverged

    def to_report(self) -> dict[str, Any]:
        """The dict handed to ``tune.report`` (None values left out: Ray Tune wants numbers)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def of(cls, result: dict[str, Any]) -> TrialResult:
        """The trial's report inside a result dict that Ray Tune passes around (its own keys ignored)."""
        return cls(**{f.name: result[f.name] for f in fields(cls) if f.name in result})

    @property
    def finite_val_loss(self) -> bool:
        """Whether this epoch's validation loss is a number the sampler and scheduler can use."""
        return self.val_loss is not None and math.isfinite(self.val_loss)
