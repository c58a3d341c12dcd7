"""The whole GPU benchmark as `python -m benchmarks` runs it: every figure, or rows saying why none was measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import common
from .machine import no_cuda_reason
from .sharing import SHARING_GOAL, SHARING_TITLE
from .trainer import BF16_GOAL, BF16_TITLE, GOAL, trainer_title

# each figure's summary row: its title and goal, for the rows of a machine without a GPU
FIGURES = (
    (SHARING_TITLE, SHARING_GOAL),
    (trainer_title("cuda"), f">= {GOAL:g}"),
    (BF16_TITLE, f">= {BF16_GOAL:g}"),
)


def not_measured(reason: str) -> dict[str, Any]:
    """One row per figure with no values, its goal, and why it was not measured."""
    rows = [common.row("gpu", f"{title} — not measured: {reason}", None, None, goal=goal) for title, goal in FIGURES]
    return {"figures": {"measured": False, "reason": reason}, "rows": rows}


def measure(quick: bool, workdir: Path, *, device: str) -> dict[str, Any]:
    """Every figure on `device`: the trainer's cells first (the GPU to itself), then the shared-GPU searches."""
    from . import sharing, trainer

    fits = trainer.measure(quick, device)
    shares = sharing.measure(quick, device, Path(workdir) / "sharing")
    return {
        "figures": {"measured": True, "device": device, "trainer": fits["figures"], "sharing": shares["figures"]},
        "rows": shares["rows"] + fits["rows"],
    }


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """The benchmarks' contract: the figures on this machine's GPU, or at once, without Ray, the not-measured rows."""
    if no_cuda_reason() is not None:
        return not_measured("no CUDA device on this machine")
    return measure(quick, workdir, device="cuda")
