"""fit against a bare cuDNN loop, and fit in bf16 against fp32: training samples/s on one device, per cell.

The CPU benchmark (benchmarks/throughput.py) with the model and data on the device: the same
StackedLSTM, random tensors, batch, AdamW and MSE; fit with grad_clip=None and a one-sample
validation split. The bare loop keeps the data resident on the device, draws its permutation
there, gathers each batch by index and synchronises before reading the clock, so its time is
the GPU's work, not just the launches. Each measurement is the second epoch of a fresh model;
fit (fp32), bare and fit (bf16) alternate, repeated, per cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .. import common
from ..throughput import BATCH, GOAL, bare_epoch, fit_epoch, random_data

BF16_GOAL = 1.0
NOT_SUPPORTED = "not supported on this device"
LOOPS = {"cuda": "bare cuDNN loop", "cpu": "bare loop (CPU smoke run)"}
BF16_TITLE = "bf16 vs fp32 fit, median samples/s ratio"


def trainer_title(device: str) -> str:
    """The summary figure of fit against the bare loop on `device`."""
    return f"fit vs {LOOPS[device]}, median samples/s ratio"


@dataclass(frozen=True)
class Cells:
    """Which cells to measure and how long an epoch should take."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    repeats: int
    epoch_seconds: float  # long enough to time, short enough for 2 epochs x 3 variants x repeats
    max_batches: int


SIZES = {
    ("cuda", False): Cells((1, 3, 6), (128, 512), 5, 0.5, 4000),
    ("cuda", True): Cells((1, 3), (128, 512), 3, 0.3, 2000),
    # the smoke run: every code path on the CPU, in seconds
    ("cpu", False): Cells((1, 2), (16,), 2, 0.05, 20),
    ("cpu", True): Cells((1, 2), (16,), 2, 0.05, 20),
}


def _samples_for(depth: int, width: int, device: str, cells: Cells) -> int:
    """Training samples per epoch so that one bare epoch takes about cells.epoch_seconds (at least 3 batches)."""
    per_batch = bare_epoch(random_data(BATCH * 3), depth, width, device) / 3
    return BATCH * max(3, min(cells.max_batches, round(cells.epoch_seconds / max(per_batch, 1e-6))))


def _pair_row(figure: str, a: dict, b: dict, ratio: dict, goal: float) -> dict:
    return common.row(
        "gpu",
        f"{figure} (ratio {ratio['min']:.2f}-{ratio['max']:.2f})",
        a["median"],
        b["median"],
        ratio=ratio["median"],
        goal=f"ratio >= {goal:g}",
        met=ratio["median"] >= goal,
    )


def _summary_row(title: str, ratios: list[float], goal: float) -> dict:
    overall = common.summary(ratios)
    return common.row(
        "gpu",
        f"{title} over {len(ratios)} cells (min {overall['min']:.2f})",
        None,
        None,
        ratio=overall["median"],
        goal=f">= {goal:g}",
        met=overall["median"] >= goal,
    )


def _unmeasured_row(figure: str, why: str) -> dict:
    return common.row("gpu", f"{figure} — {why}", None, None, goal=f">= {BF16_GOAL:g}")


def _bf16_failure(device: str) -> str | None:
    """None when fit trains in bf16 on `device`; else why not (not every PyTorch and cuDNN runs a bf16 LSTM)."""
    from stacktune.models.precision import bf16_supported

    if not bf16_supported(device):
        return NOT_SUPPORTED
    try:
        fit_epoch(random_data(BATCH * 3), 1, 16, device, "bf16")
    except RuntimeError as exc:
        return f"fit failed in bf16: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
    return None


def _cell(depth: int, width: int, device: str, cells: Cells, bf16_failure: str | None) -> tuple[dict, list[dict]]:
    """One cell's interleaved measurements: its figures, and its rows (fit vs bare, then bf16 vs fp32)."""
    samples = _samples_for(depth, width, device, cells)
    data = random_data(samples)
    common.log(f"gpu trainer: depth {depth}, width {width}, {samples} samples per epoch on {device}")
    variants: dict[str, Callable[[], float]] = {
        "fit": lambda: fit_epoch(data, depth, width, device, "fp32"),
        "bare": lambda: bare_epoch(data, depth, width, device),
    }
    if bf16_failure is None:
        variants["bf16"] = lambda: fit_epoch(data, depth, width, device, "bf16")
    timed = common.interleaved(variants, cells.repeats)
    rate = {name: common.summary([samples / s for s in seconds]) for name, seconds in timed.items()}
    # same samples: a speed ratio is the inverse time ratio, taken pair by pair
    cell: dict[str, Any] = {"samples": samples, **rate}
    cell["fit_vs_bare"] = common.summary([b / f for f, b in zip(timed["fit"], timed["bare"], strict=True)])
    name = f"depth {depth} x width {width}"
    figure = f"fit vs {LOOPS[device]} samples/s, {name}"
    rows = [_pair_row(figure, rate["fit"], rate["bare"], cell["fit_vs_bare"], GOAL)]
    figure = f"bf16 vs fp32 fit samples/s, {name}"
    if bf16_failure is None:
        cell["bf16_vs_fp32"] = common.summary([f / h for f, h in zip(timed["fit"], timed["bf16"], strict=True)])
        rows.append(_pair_row(figure, rate["bf16"], rate["fit"], cell["bf16_vs_fp32"], BF16_GOAL))
    else:
        rows.append(_unmeasured_row(figure, bf16_failure))
    return cell, rows


def measure(quick: bool, device: str) -> dict[str, Any]:
    """Samples/s of fit (fp32 and, where the device can, bf16) and of the bare loop per cell, interleaved."""
    import torch

    cells = SIZES[(device, quick)]
    failure = _bf16_failure(device)
    figures: dict[str, Any] = {"device": device, "batch_size": BATCH, "repeats": cells.repeats}
    figures["bf16_not_measured"] = failure
    measured: dict[str, dict] = {}
    fit_rows, bf16_rows = [], []
    threads = torch.get_num_threads()
    # one thread, as in the CPU benchmark: on a GPU the host only launches kernels; on the CPU it keeps 2 cores steady
    torch.set_num_threads(1)
    try:
        for depth in cells.depths:
            for width in cells.widths:
                measured[f"d{depth}-w{width}"], (fit_row, bf16_row) = _cell(depth, width, device, cells, failure)
                fit_rows.append(fit_row)
                bf16_rows.append(bf16_row)
    finally:
        torch.set_num_threads(threads)
    figures["cells"] = measured
    fit_rows.append(_summary_row(trainer_title(device), [c["fit_vs_bare"]["median"] for c in measured.values()], GOAL))
    if failure is None:
        bf16_rows.append(_summary_row(BF16_TITLE, [c["bf16_vs_fp32"]["median"] for c in measured.values()], BF16_GOAL))
    else:
        bf16_rows.append(_unmeasured_row(BF16_TITLE, failure))
    return {"figures": figures, "rows": fit_rows + bf16_rows}
