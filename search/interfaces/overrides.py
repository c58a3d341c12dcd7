"""The spec fields that `search` and `submit` options override."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SpecOverrides:
    """Command-line values that replace the spec's own; None leaves the spec's value."""

    name: str | None = None
    depths: list[int] | None = None
    trials_per_depth: int | None = None
    epochs: int | None = None
    seeds: int | None = None
    replicates: int | None = None
    origins: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """`section.key` -> value, as `spec.loading.read_overridden` applies them."""
        return {
            "name": self.name,
            "depths": self.depths,
            "trials_per_depth": self.trials_per_depth,
            "train.epochs": self.epochs,
            "evaluation.seeds": self.seeds,
            "replicates": self.replicates,
            "evaluation.origins": self.origins,
        }
