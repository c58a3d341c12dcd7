"""Train one LSTMConfig on one Prepared dataset: the hot loop of every search trial."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stacktune.datasets.types import Prepared, Split, Task

from .lstm import LSTMConfig, StackedLSTM
from .precision import check_precision

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
EVAL_BATCH = 1024


@dataclass
class TrainSettings:
    """How to train: optimiser, schedule, seed and hardware; raises ValueError if invalid."""

    lr: float
    epochs: int  # the most epochs to train; patience may end training sooner
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: Literal["adamw", "adam"] = "adamw"
    grad_clip: float | None = 1.0  # max global gradient norm; None turns clipping off
    seed: int = 0
    threads: int | None = None  # torch.set_num_threads for this process; None leaves it alone
    device: str = "cpu"
    # "bf16": forward passes under bfloat16 autocast (Tensor Cores on a GPU); weights and optimizer stay fp32.
    # Not every CPU can: fit raises ValueError where it cannot (see precision.bf16_supported)
    precision: Literal["fp32", "bf16"] = "fp32"
    # stop after this many epochs in a row without a new best val loss; None trains all `epochs`
    patience: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.threads is not None and not self.threads >= 1:
            raise ValueError(f"threads must be a positive int or None, got {self.threads!r}")
        if self.patience is not None and (
            isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1
        ):
            raise ValueError(f"patience must be a positive int or None, got {self.patience!r}")


@dataclass
class EpochResult:
    """Losses after one epoch; val_accuracy is None for regression."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's samples, in training mode
    val_loss: float
    val_accuracy: float | None
    seconds: float
    # Everything needed to continue after this epoch (see fit's resume_from); set every state_every epochs.
    state: dict | None = field(default=None, repr=False)


@dataclass
class FitResult:
    """Outcome of fit; model holds the best epoch's weights and is in eval mode.

    A patience stop is a normal end: state "completed", with `reason` saying why fewer than
    `epochs` epochs ran.
    """

    state: Literal["completed", "diverged", "stopped"]
    reason: str | None  # why training ended before `epochs` epochs; None when all of them ran
    epochs: list[EpochResult]
    best_epoch: int | None  # None when no epoch had a finite val loss
    best_val_loss: float  # inf when no epoch had a finite val loss
    params: int
    seconds: float
    model: StackedLSTM


@dataclass
class _Tensors:
    """A Split held whole on the training device (lengths stay on CPU for packing)."""

    x: Tensor
    y: Tensor
    lengths: Tensor | None

    @classmethod
    def of(cls, split: Split, task: Task, device: torch.device) -> _Tensors:
        if len(split) == 0:
            raise ValueError("cannot train or evaluate on an empty split")
        y_dtype = np.float32 if task == "regression" else np.int64
        return cls(
            torch.as_tensor(np.ascontiguousarray(split.x, dtype=np.float32), device=device),
            torch.as_tensor(np.ascontiguousarray(split.y, dtype=y_dtype), device=device),
            None if split.lengths is None else torch.as_tensor(split.lengths, dtype=torch.int64),
        )


def _loss_fn(task: Task) -> Callable[[Tensor, Tensor], Tensor]:
    return F.mse_loss if task == "regression" else F.cross_entropy


def _autocast(device: torch.device, precision: str):
    """bfloat16 autocast for "bf16", else a no-op context (cheaper per batch than a disabled autocast)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _evaluate(model: StackedLSTM, data: _Tensors, task: Task, batch_size: int, precision: str = "fp32") -> dict:
    """Sample-weighted mean loss (and accuracy) of model over data, in eval mode."""
    loss_fn = _loss_fn(task)
    n = data.x.shape[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.x.device)
    model.eval()
    with torch.inference_mode(), _autocast(data.x.device, precision):
        for i in range(0, n, batch_size):
            lengths = None if data.lengths is None else data.lengths[i : i + batch_size]
            out = model(data.x[i : i + batch_size], lengths)
            y = data.y[i : i + batch_size]
            loss_sum += loss_fn(out.float(), y) * y.shape[0]
            if task == "classification":
                correct += (out.argmax(dim=1) == y).sum()
    metrics = {"loss": loss_sum.item() / n}
    if task == "classification":
        metrics["accuracy"] = correct.item() / n
    return metrics


def evaluate(
    model: StackedLSTM,
    split: Split,
    *,
    task: Task,
    batch_size: int = EVAL_BATCH,
    device: str = "cpu",
) -> dict:
    """Mean loss over split in eval mode, as {"loss"} plus "accuracy" for classification.

    device is where model lives; the split is copied there.
    """
    return _evaluate(model, _Tensors.of(split, task, torch.device(device)), task, batch_size)


def _train_epoch(
    model: StackedLSTM,
    optimizer: torch.optim.Optimizer,
    data: _Tensors,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    settings: TrainSettings,
    generator: torch.Generator,
) -> float:
    """One pass over data in a seeded random order; returns the sample-weighted mean loss."""
    model.train()
    params = list(model.parameters())
    perm = torch.randperm(data.x.shape[0], generator=generator)
    # one gather per epoch, so that every batch below is a free contiguous slice
    on_device = perm.to(data.x.device)
    x, y = data.x[on_device], data.y[on_device]
    lengths = None if data.lengths is None else data.lengths[perm]
    # summed on the device and read once per epoch: a per-batch .item() would force a sync
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    bs = settings.batch_size
    for i in range(0, x.shape[0], bs):
        yb = y[i : i + bs]
        with _autocast(x.device, settings.precision):
            out = model(x[i : i + bs], None if lengths is None else lengths[i : i + bs])
        loss = loss_fn(out.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        loss_sum += loss.detach() * yb.shape[0]
    return loss_sum.item() / x.shape[0]


def _divergence(result: EpochResult) -> str | None:
    """Why this epoch counts as diverged, or None when both losses are finite."""
    for name in ("train_loss", "val_loss"):
        value = getattr(result, name)
        if not math.isfinite(value):
            return f"{name} became {value} at epoch {result.epoch}"
    return None


def _epochs_since_best(history: list[EpochResult]) -> int:
    """Epochs in a row at the end of history without a strictly lower finite val loss than all before them."""
    best, since = math.inf, 0
    for e in history:
        if math.isfinite(e.val_loss) and e.val_loss < best:
            best, since = e.val_loss, 0
        else:
            since += 1
    return since


def _out_of_patience(since_best: int, settings: TrainSettings, best_epoch: int | None) -> str | None:
    """The reason to stop when the val loss has not improved for `patience` epochs, else None."""
    if settings.patience is None or since_best < settings.patience:
        return None
    epochs = "epoch" if since_best == 1 else "epochs"
    return f"no improvement in {since_best} {epochs} (best at epoch {best_epoch})"


def _prepare(config: LSTMConfig, data: Prepared, settings: TrainSettings) -> torch.device:
    """Checks that `config` fits `data` and `settings` can run, sets the threads; returns the device to train on."""
    if data.task != config.task:
        raise ValueError(f"config.task is {config.task!r} but the data is {data.task!r}")
    for name in ("input_size", "output_size"):
        if getattr(data, name) != getattr(config, name):
            raise ValueError(f"config.{name} is {getattr(config, name)} but the data has {getattr(data, name)}")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    # a clear error here rather than oneDNN's "could not create a primitive descriptor" mid-epoch
    check_precision(settings.precision, device)
    return device


def _optimizer(model: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.Optimizer:
    # the fused update is one kernel call instead of several ops per tensor: about 0.6 ms
    # of a 9 ms step for two 64-unit layers on CPU
    return OPTIMIZERS[settings.optimizer](
        model.parameters(),
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )


def fit(
    config: LSTMConfig,
    data: Prepared,
    settings: TrainSettings,
    *,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
    state_every: int = 0,
    resume_from: dict | None = None,
) -> FitResult:
    """Train StackedLSTM(config) on data.train, scoring data.val after every epoch.

    on_epoch sees each finite epoch; returning True stops training ("stopped"). A NaN or
    infinite loss stops it at once ("diverged"). With `settings.patience`, `patience` epochs in a
    row without a strictly lower val loss than the best so far end training early, as "completed"
    with a `reason`. Every `state_every` epochs the EpochResult carries a `state` that `resume_from`
    continues from exactly as if training had not stopped (patience counter included).
    Returns the best-val-loss model and history. Raises ValueError when `settings.precision` cannot run on the
    device (bf16 on a CPU without bfloat16 support).
    """
    start = time.perf_counter()
    device = _prepare(config, data, settings)
    torch.manual_seed(settings.seed)
    model = StackedLSTM(config).to(device)
    optimizer = _optimizer(model, settings, device)
    train = _Tensors.of(data.train, config.task, device)
    val = _Tensors.of(data.val, config.task, device)
    # a private generator keeps the batch order independent of any other use of torch's RNG
    generator = torch.Generator().manual_seed(settings.seed)
    loss_fn = _loss_fn(config.task)

    history: list[EpochResult] = []
    state, reason = "completed", None
    best_epoch, best_val_loss, best_weights = None, math.inf, None
    since_best = 0  # epochs in a row without a new best val loss, for patience
    first = 1
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        generator.set_state(resume_from["generator"])
        torch.set_rng_state(resume_from["torch_rng"])
        history = [EpochResult(**e) for e in resume_from["history"]]
        best_epoch, best_val_loss, best_weights = (
            resume_from["best_epoch"],
            resume_from["best_val_loss"],
            resume_from["best_weights"],
        )
        first = resume_from["epoch"] + 1
        # states saved before patience existed lack the counter; the history gives it back
        since_best = resume_from.get("epochs_since_best", _epochs_since_best(history))
        reason = _out_of_patience(since_best, settings, best_epoch)
        if reason is not None:  # resumed with a smaller patience than it was saved with
            first = settings.epochs + 1
    for epoch in range(first, settings.epochs + 1):
        epoch_start = time.perf_counter()
        train_loss = _train_epoch(model, optimizer, train, loss_fn, settings, generator)
        metrics = _evaluate(model, val, config.task, EVAL_BATCH, settings.precision)
        seconds = time.perf_counter() - epoch_start
        result = EpochResult(epoch, train_loss, metrics["loss"], metrics.get("accuracy"), seconds)
        history.append(result)
        reason = _divergence(result)
        if reason is not None:
            state = "diverged"
            break
        if result.val_loss < best_val_loss:
            best_epoch, best_val_loss, since_best = epoch, result.val_loss, 0
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        patience_reason = _out_of_patience(since_best, settings, best_epoch)
        # no state on the last epoch: nothing would be left to resume
        if state_every and epoch % state_every == 0 and epoch < settings.epochs and patience_reason is None:
            result = replace(
                result,
                state={
                    "epoch": epoch,
                    # copies: training goes on and would change these tensors in place
                    "model": copy.deepcopy(model.state_dict()),
                    "optimizer": copy.deepcopy(optimizer.state_dict()),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": [{**asdict(e), "state": None} for e in history],
                    "best_epoch": best_epoch,
                    "best_val_loss": best_val_loss,
                    "best_weights": best_weights,
                    "epochs_since_best": since_best,
                },
            )
        if on_epoch is not None and on_epoch(result):
            state, reason = "stopped", f"on_epoch asked to stop after epoch {epoch}"
            break
        if patience_reason is not None:
            reason = patience_reason
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    return FitResult(
        state=state,
        reason=reason,
        epochs=history,
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        params=model.num_parameters(),
        seconds=time.perf_counter() - start,
        model=model.eval(),
    )
