"""Train one LSTMConfig with several seeds: one fit per seed, or all seeds at once as one BatchedLSTM."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from stacktune.datasets.types import Prepared, Task

from .batched import BatchedLSTM
from .lstm import LSTMConfig, StackedLSTM
from .train import (
    EVAL_BATCH,
    EpochResult,
    FitResult,
    TrainSettings,
    _autocast,
    _divergence,
    _optimizer,
    _out_of_patience,
    _prepare,
    _Tensors,
    fit,
)

# The rule below comes from benchmarks/seeds.py on a 2-core Intel Xeon (table in benchmarks/README.md): fp32, one
# thread, window 16, batch 64. There nn.LSTM runs each layer as one fused oneDNN kernel, which beats the batched
# step's matrix product and separate elementwise passes once the layers are wide: with 8 seeds batched was faster
# where the widths sum to at most 32 (1.15-2.2x) and slower above (0.5-0.9x); with 4 seeds at a sum of 8 (1.4x;
# 1.1x at 32, 0.8-0.9x at 32 over 2 or 4 layers); with 2 seeds nowhere (0.55-0.85x). Other devices and bf16 were
# not measured, so they train one fit per seed.
MIN_SEEDS = 4
UNITS_PER_SEED = 4  # the widths may sum to this many units per seed, counting at most 8 seeds


def batched_pays(config: LSTMConfig, settings: TrainSettings, seeds: int, device: str | torch.device) -> bool:
    """Whether training `seeds` seeds as one BatchedLSTM is expected to beat one fit per seed on `device`.

    True only where it was measured faster: fp32 on a CPU, at least 4 seeds, and the layers' widths summing to
    at most 4 units per seed (up to 8 seeds: 16 units for 4 seeds, 32 for 8 or more). Never with dropout: its masks
    would come from one random stream, so a seed's result would differ from its own `fit`'s.
    """
    if torch.device(device).type != "cpu" or settings.precision != "fp32" or seeds < MIN_SEEDS:
        return False
    if config.dropout > 0:
        return False
    return sum(config.units) <= UNITS_PER_SEED * min(seeds, 8)


def fit_seeds(
    config: LSTMConfig,
    data: Prepared,
    settings: TrainSettings,
    seeds: Sequence[int],
    *,
    batched: bool | None = None,
) -> list[FitResult]:
    """One FitResult per seed, in order, each meaning what `fit(config, data, replace(settings, seed=seed))` gives.

    batched=False calls fit once per seed; batched=True trains all seeds together as one BatchedLSTM, each seed
    with its own initial weights, batch order, optimizer state, gradient clipping, best epoch, patience and
    divergence; None picks whichever `batched_pays` expects to be faster. Batched results match separate ones up
    to float rounding, except with dropout: its masks come from one random stream for all members. A batched
    run's time is shared: each seed's `seconds` (and each epoch's) is its share, so that they add up to the run's.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f"each seed must be an int, got {s!r}")
    if batched is None:
        batched = batched_pays(config, settings, len(seeds), settings.device)
    if not batched:
        return [fit(config, data, replace(settings, seed=s)) for s in seeds]
    return _fit_batched(config, data, settings, seeds)


@dataclass
class _Member:
    """One seed's progress in a batched run."""

    seed: int
    history: list[EpochResult] = field(default_factory=list)
    state: str = "completed"
    reason: str | None = None
    best_epoch: int | None = None
    best_val_loss: float = math.inf
    best_weights: dict | None = None
    last_weights: dict | None = None  # the weights it stopped with, for a member without a best epoch
    since_best: int = 0
    seconds: float = 0.0  # its share of the run's wall time


def _member_losses(out: Tensor, y: Tensor, task: Task) -> Tensor:
    """Per-member mean loss of out (members, batch, outputs) against y (batch, ...) or (members, batch, ...)."""
    members, batch = out.shape[:2]
    if task == "regression":
        return F.mse_loss(out, y.expand_as(out), reduction="none").flatten(1).mean(1)
    return (
        F.cross_entropy(out.flatten(0, 1), y.expand(members, batch).reshape(-1), reduction="none")
        .view(members, batch)
        .mean(1)
    )


def _evaluate_batched(model: BatchedLSTM, data: _Tensors, task: Task, precision: str) -> tuple[Tensor, Tensor | None]:
    """Per-member sample-weighted mean loss over data, in eval mode, and accuracy for classification (CPU float64)."""
    n, members = data.x.shape[0], model.members
    # as many sequences per call as fit's evaluation holds in memory, spread over the members
    step = max(1, EVAL_BATCH // members)
    loss_sum = torch.zeros(members, dtype=torch.float64, device=data.x.device)
    correct = torch.zeros(members, dtype=torch.int64, device=data.x.device)
    model.eval()
    with torch.inference_mode(), _autocast(data.x.device, precision):
        for i in range(0, n, step):
            lengths = None if data.lengths is None else data.lengths[i : i + step]
            out = model(data.x[i : i + step], lengths).float()
            y = data.y[i : i + step]
            loss_sum += _member_losses(out, y, task).double() * y.shape[0]
            if task == "classification":
                correct += (out.argmax(dim=2) == y).sum(1)
    accuracy = (correct.double() / n).cpu() if task == "classification" else None
    return (loss_sum / n).cpu(), accuracy


def _clip_per_member(params: list[Tensor], max_norm: float) -> None:
    """clip_grad_norm_ for each member on its own: member s's gradients scaled to global norm at most max_norm."""
    grads = [p.grad for p in params if p.grad is not None]
    members = grads[0].shape[0]
    squares = torch.stack([g.detach().float().pow(2).reshape(members, -1).sum(1) for g in grads]).sum(0)
    coef = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(members, *[1] * (g.dim() - 1)).to(g.dtype))


def _train_epoch_batched(
    model: BatchedLSTM,
    optimizer: torch.optim.Optimizer,
    data: _Tensors,
    task: Task,
    settings: TrainSettings,
    generators: list[torch.Generator],
) -> Tensor:
    """One pass over data per member, each in its own seeded order; per-member sample-weighted mean loss (CPU)."""
    model.train()
    params = list(model.parameters())
    n = data.x.shape[0]
    # the same draw as fit's, from each member's own generator
    perms = torch.stack([torch.randperm(n, generator=g) for g in generators])
    on_device = perms.to(data.x.device)
    loss_sum = torch.zeros(model.members, dtype=torch.float64, device=data.x.device)
    bs = settings.batch_size
    for i in range(0, n, bs):
        index = on_device[:, i : i + bs]
        lengths = None if data.lengths is None else data.lengths[perms[:, i : i + bs]]
        y = data.y[index]
        with _autocast(data.x.device, settings.precision):
            out = model(data.x[index], lengths)
        losses = _member_losses(out.float(), y, task)
        optimizer.zero_grad(set_to_none=True)
        # members share no weights: the gradient of the sum is each member's own gradient
        losses.sum().backward()
        if settings.grad_clip is not None:
            _clip_per_member(params, settings.grad_clip)
        optimizer.step()
        loss_sum += losses.detach().double() * y.shape[1]
    return (loss_sum / n).cpu()


def _drop_members(model: BatchedLSTM, optimizer: torch.optim.Optimizer, keep: list[int]) -> None:
    """Shrinks the stack and the optimizer's per-member state to `keep`, so finished members stop changing."""
    members = model.members
    model.keep(keep)
    index = torch.as_tensor(keep, dtype=torch.long)
    for state in optimizer.state.values():
        for key, value in state.items():
            # per-element moments carry the member dim; the step count is one scalar for all
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == members:
                state[key] = value.index_select(0, index.to(value.device))


def _fit_batched(config: LSTMConfig, data: Prepared, settings: TrainSettings, seeds: list[int]) -> list[FitResult]:
    start = time.perf_counter()
    device = _prepare(config, data, settings)
    models = []
    for s in seeds:
        torch.manual_seed(s)  # each member starts exactly as fit's model of that seed
        models.append(StackedLSTM(config))
    params = models[0].num_parameters()
    model = BatchedLSTM(models).to(device)
    del models
    optimizer = _optimizer(model, settings, device)
    train = _Tensors.of(data.train, config.task, device)
    val = _Tensors.of(data.val, config.task, device)
    members = [_Member(s) for s in seeds]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    active = list(range(len(seeds)))  # the members still in the stack, in stack order
    setup = time.perf_counter() - start
    for m in members:
        m.seconds = setup / len(members)

    for epoch in range(1, settings.epochs + 1):
        epoch_start = time.perf_counter()
        train_losses = _train_epoch_batched(
            model, optimizer, train, config.task, settings, [generators[k] for k in active]
        )
        val_losses, accuracies = _evaluate_batched(model, val, config.task, settings.precision)
        # every member's share of this epoch's wall time, so that the seeds' seconds add up to the run's
        seconds = (time.perf_counter() - epoch_start) / len(active)
        keep = []
        for j, k in enumerate(active):
            m = members[k]
            accuracy = None if accuracies is None else accuracies[j].item()
            result = EpochResult(epoch, train_losses[j].item(), val_losses[j].item(), accuracy, seconds)
            m.history.append(result)
            m.seconds += seconds
            reason = _divergence(result)
            if reason is not None:
                m.state, m.reason = "diverged", reason
            else:
                if result.val_loss < m.best_val_loss:
                    m.best_epoch, m.best_val_loss, m.since_best = epoch, result.val_loss, 0
                    m.best_weights = model.member_state_dict(j)
                else:
                    m.since_best += 1
                m.reason = _out_of_patience(m.since_best, settings, m.best_epoch)
            if m.reason is None:
                keep.append(j)
            elif m.best_weights is None:
                m.last_weights = model.member_state_dict(j)
        if len(keep) < len(active):
            active = [active[j] for j in keep]
            if not active:
                break
            _drop_members(model, optimizer, keep)
    for j, k in enumerate(active):
        if members[k].best_weights is None:
            members[k].last_weights = model.member_state_dict(j)

    results = []
    for m in members:
        with torch.random.fork_rng(devices=[]):
            final = StackedLSTM(config)
        final.load_state_dict(m.best_weights if m.best_weights is not None else m.last_weights)
        results.append(
            FitResult(
                state=m.state,
                reason=m.reason,
                epochs=m.history,
                best_epoch=m.best_epoch,
                best_val_loss=m.best_val_loss,
                params=params,
                seconds=m.seconds,
                model=final.to(device).eval(),
            )
        )
    # the wrap-up is shared too
    wrap_up = (time.perf_counter() - start - sum(m.seconds for m in members)) / len(members)
    for r in results:
        r.seconds += wrap_up
    return results
