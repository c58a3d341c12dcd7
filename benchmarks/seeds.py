"""Seeds trained together: wall time of fit_seeds with batched=True against one fit per seed (batched=False).

Both train the same 8 seeds of one config on the same sine series (window 16, batch 64, AdamW, gradient
clipping on), for the same epochs with one torch thread, and return the same results up to float rounding.
The two variants alternate, repeated, per cell of depth x units; the ratio is separate seconds / batched
seconds per pair (above 1: batched is faster). Then 2 and 4 seeds at a few of the small cells, where 8 paid.
The device is CUDA when torch sees one, else the CPU. These figures are what models.seeds.batched_pays is
derived from; each row's "met?" says whether batched_pays called that cell right.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import common

SEEDS = 8
FEWER = (2, 4)  # seed counts measured at FEWER_CELLS too
FEWER_CELLS = ((1, 8), (1, 32), (2, 16), (4, 8))
WINDOW = 16
BATCH = 64


def series(length: int):
    """The sine set, windowed and split as a search loads it."""
    from stacktune.datasets import load

    return load({"name": "sine", "window": WINDOW, "length": length})


def config(data, depth: int, units: int):
    from stacktune.models import LSTMConfig

    return LSTMConfig(input_size=data.input_size, units=[units] * depth, output_size=data.output_size)


def settings(epochs: int, device: str):
    from stacktune.models import TrainSettings

    return TrainSettings(lr=1e-3, epochs=epochs, batch_size=BATCH, threads=1, device=device)


def timed_fit_seeds(data, depth: int, units: int, epochs: int, device: str, *, seeds: int, batched: bool) -> float:
    """Seconds of one fit_seeds call over seeds 0 .. seeds - 1."""
    import torch

    from stacktune.models.seeds import fit_seeds

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fit_seeds(config(data, depth, units), data, settings(epochs, device), list(range(seeds)), batched=batched)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(data, depth: int, units: int, seeds: int, epochs: int, repeats: int, device: str) -> dict[str, Any]:
    """Batched and separate seconds of one cell, alternated; the speed-up per pair; what batched_pays says."""
    from stacktune.models.seeds import batched_pays

    common.log(f"seeds: {seeds} seeds, depth {depth}, units {units} on {device}")
    timed = common.interleaved(
        {
            name: lambda batched=batched: timed_fit_seeds(
                data, depth, units, epochs, device, seeds=seeds, batched=batched
            )
            for name, batched in (("separate", False), ("batched", True))
        },
        repeats,
    )
    return {
        "depth": depth,
        "units": units,
        "seeds": seeds,
        "separate": common.summary(timed["separate"]),
        "batched": common.summary(timed["batched"]),
        "speedup": common.summary([s / b for s, b in zip(timed["separate"], timed["batched"], strict=True)]),
        "batched_pays": batched_pays(config(data, depth, units), settings(epochs, device), seeds, device),
    }


def row(cell: dict[str, Any], device: str) -> dict[str, Any]:
    """A table row: batched against separate seconds, and whether batched_pays called the cell right."""
    speedup = cell["speedup"]
    pays = cell["batched_pays"]
    return common.row(
        "seeds",
        f"{cell['seeds']} seeds on {device}, depth {cell['depth']} x units {cell['units']}: seconds "
        f"(speed-up {speedup['min']:.2f}-{speedup['max']:.2f})",
        cell["batched"]["median"],
        cell["separate"]["median"],
        ratio=speedup["median"],
        goal=f"batched_pays says {'yes' if pays else 'no'}",
        met=(speedup["median"] > 1) == pays,
        unit="s",
    )


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Seconds of batched and separate fit_seeds per depth x units (and fewer seeds), interleaved; speed-ups."""
    import torch

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.cuda.get_device_name() if device == "cuda" else common.cpu_model()
    depths = [1, 2, 4] if quick else [1, 2, 3, 4]
    widths = [8, 32, 128] if quick else [8, 16, 32, 64, 128]
    repeats = 1 if quick else 3
    epochs = 1 if quick else 2
    data = series(400 if quick else 1000)
    # the first call of each variant pays for allocations and lazy imports: not a figure
    for batched in (False, True):
        timed_fit_seeds(data, 1, 8, 1, device, seeds=2, batched=batched)
    grid = [(SEEDS, depth, units) for depth in depths for units in widths]
    fewer = (
        [(n, depth, units) for n in FEWER[-1:] for depth, units in FEWER_CELLS[:1]]
        if quick
        else [(n, depth, units) for n in FEWER for depth, units in FEWER_CELLS]
    )
    cells = {
        f"s{seeds}-d{depth}-u{units}": measure(data, depth, units, seeds, epochs, repeats, device)
        for seeds, depth, units in grid + fewer
    }
    return {
        "figures": {
            "device": device,
            "machine": where,
            "window": WINDOW,
            "batch_size": BATCH,
            "train_samples": len(data.train),
            "epochs": epochs,
            "threads": 1,
            "repeats": repeats,
            "cells": cells,
        },
        "rows": [row(cell, device) for cell in cells.values()],
    }


def main() -> None:
    """`python -m benchmarks.seeds [--quick]`: this benchmark alone, its table printed."""
    import sys

    result = run("--quick" in sys.argv, Path("."))
    print(common.table(result["rows"]))


if __name__ == "__main__":
    main()
