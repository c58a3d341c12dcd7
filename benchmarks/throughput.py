"""Trainer throughput: training samples per second of stacktune.models.fit against a bare PyTorch loop.

Both train the same StackedLSTM on the same tensors with AdamW, the same batch size and one
thread. The bare loop is the textbook one (shuffle, forward, loss, backward, step) with an
index gather per batch and no DataLoader, the strongest plain baseline. fit runs with
grad_clip=None so both do the same arithmetic, and with a one-sample validation split so its
epoch time is training time. Each measurement is the second epoch of a fresh model (the first
warms up allocations); fit and bare alternate, repeated, per cell.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import common

WINDOW = 16
BATCH = 64
LR = 1e-3
TARGET_EPOCH_SECONDS = 0.3  # long enough to time, short enough for 2 epochs x 2 loops x repeats
GOAL = 0.97


def random_data(samples: int):
    import numpy as np

    from stacktune.datasets import Prepared, Split

    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, WINDOW, 1)).astype(np.float32)
    y = rng.standard_normal((samples, 1)).astype(np.float32)
    one = Split(x[:1], y[:1])
    return Prepared(name="bench", task="regression", input_size=1, output_size=1, train=Split(x, y), val=one, test=one)


def lstm_config(depth: int, width: int):
    from stacktune.models import LSTMConfig

    return LSTMConfig(input_size=1, units=[width] * depth, output_size=1)


def fit_epoch(data, depth: int, width: int, device: str = "cpu", precision: str = "fp32") -> float:
    """Seconds of fit's second epoch on `device` (fit reads its losses once per epoch, which waits for the device)."""
    from stacktune.models import TrainSettings, fit

    settings = TrainSettings(
        lr=LR, epochs=2, batch_size=BATCH, grad_clip=None, threads=1, seed=0, device=device, precision=precision
    )
    seconds: list[float] = []
    fit(lstm_config(depth, width), data, settings, on_epoch=lambda e: seconds.append(e.seconds))
    return seconds[-1]


def bare_epoch(data, depth: int, width: int, device: str = "cpu") -> float:
    """Seconds of the bare loop's second epoch, the data resident on `device`."""
    import torch
    import torch.nn.functional as F

    from stacktune.models import StackedLSTM

    def sync() -> None:  # the clock must count the work queued on a GPU, not only its launch
        if device == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    model = StackedLSTM(lstm_config(depth, width)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    x, y = torch.from_numpy(data.train.x).to(device), torch.from_numpy(data.train.y).to(device)
    seconds = 0.0
    for _ in range(2):
        sync()
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(x.shape[0], device=device)
        for i in range(0, x.shape[0], BATCH):
            idx = perm[i : i + BATCH]
            loss = F.mse_loss(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        sync()
        seconds = time.perf_counter() - start
    return seconds


def _samples_for(depth: int, width: int) -> int:
    """Training samples per epoch so that one epoch takes about TARGET_EPOCH_SECONDS (at least 3 batches)."""
    probe = random_data(BATCH * 3)
    per_batch = bare_epoch(probe, depth, width) / 3
    return BATCH * max(3, min(200, round(TARGET_EPOCH_SECONDS / max(per_batch, 1e-6))))


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Samples/s of fit and of the bare loop per depth x width, interleaved; median ratio and spread."""
    import torch

    torch.set_num_threads(1)
    depths = [1, 3] if quick else [1, 3, 6]
    widths = [32, 128] if quick else [32, 128, 512]
    repeats = 3 if quick else 5
    cells: dict[str, Any] = {}
    rows = []
    for depth in depths:
        for width in widths:
            samples = _samples_for(depth, width)
            data = random_data(samples)
            common.log(f"throughput: depth {depth}, width {width}, {samples} samples per epoch")
            timed = common.interleaved(
                {
                    "fit": lambda data=data, depth=depth, width=width: fit_epoch(data, depth, width),
                    "bare": lambda data=data, depth=depth, width=width: bare_epoch(data, depth, width),
                },
                repeats,
            )
            # Same samples: the speed ratio is the time ratio.
            ratios = [b / f for f, b in zip(timed["fit"], timed["bare"], strict=False)]
            fit_rate = common.summary([samples / s for s in timed["fit"]])
            bare_rate = common.summary([samples / s for s in timed["bare"]])
            ratio = common.summary(ratios)
            cells[f"d{depth}-w{width}"] = {"samples": samples, "fit": fit_rate, "bare": bare_rate, "ratio": ratio}
            rows.append(
                common.row(
                    "throughput",
                    f"samples/s, depth {depth} x width {width} (ratio {ratio['min']:.2f}-{ratio['max']:.2f})",
                    fit_rate["median"],
                    bare_rate["median"],
                    ratio=ratio["median"],
                    goal=f"ratio >= {GOAL}",
                    met=ratio["median"] >= GOAL,
                )
            )
    medians = [c["ratio"]["median"] for c in cells.values()]
    overall = common.summary(medians)
    rows.append(
        common.row(
            "throughput",
            f"median ratio over {len(cells)} cells (min {overall['min']:.2f})",
            None,
            None,
            ratio=overall["median"],
            goal=f">= {GOAL}",
            met=overall["median"] >= GOAL,
        )
    )
    return {
        "figures": {
            "window": WINDOW,
            "batch_size": BATCH,
            "threads": 1,
            "repeats": repeats,
            "cells": cells,
            "median_ratio": overall,
        },
        "rows": rows,
    }
