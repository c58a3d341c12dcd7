"""A stacked LSTM with a linear head: the one model family stacktune searches over.

This file needs only PyTorch: a logged MLflow Model carries a copy of it (search/tracking/models.py), so that the
model loads where stacktune is not installed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from os import PathLike
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

if TYPE_CHECKING:
    from stacktune.datasets.types import Task

TASKS = ("regression", "classification")


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass, and True as a width is always a mistake
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclass
class LSTMConfig:
    """Architecture of a StackedLSTM; raises ValueError on construction if invalid."""

    input_size: int
    units: list[int]  # one width per layer, bottom first: [128, 64, 32] is three layers
    output_size: int
    task: Task = "regression"
    dropout: float = 0.0  # between layers only: never on the input or before the head
    residual: bool = False  # skip connections between consecutive layers of equal width
    forget_bias: float = 1.0  # initial b_ih + b_hh of the forget gate

    def __post_init__(self) -> None:
        _positive_int("input_size", self.input_size)
        _positive_int("output_size", self.output_size)
        if not isinstance(self.units, (list, tuple)) or not self.units:
            raise ValueError(f"units must be a non-empty list of positive ints, got {self.units!r}")
        self.units = [_positive_int(f"units[{i}]", u) for i, u in enumerate(self.units)]
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not math.isfinite(self.forget_bias):
            raise ValueError(f"forget_bias must be finite, got {self.forget_bias!r}")

    @property
    def fused(self) -> bool:
        """True when a single multi-layer nn.LSTM can run the whole stack."""
        return not self.residual and len(set(self.units)) == 1

    @property
    def skips(self) -> tuple[bool, ...]:
        """Per layer, whether its input is added to its output."""
        return tuple(self.residual and i > 0 and self.units[i] == self.units[i - 1] for i in range(len(self.units)))


def count_parameters(cfg: LSTMConfig) -> int:
    """Exact trainable parameter count of StackedLSTM(cfg), without building it."""
    total, width_in = 0, cfg.input_size
    for h in cfg.units:
        # four gates, each with input and recurrent weights plus PyTorch's two bias vectors
        total += 4 * h * (width_in + h) + 8 * h
        width_in = h
    return total + width_in * cfg.output_size + cfg.output_size


# Between layers a batch is either a (batch, time, features) tensor or a PackedSequence;
# packed data is a flat (steps, features) tensor, so dropout and skips apply to it directly.
def _data(seq: Tensor | PackedSequence) -> Tensor:
    return seq.data if isinstance(seq, PackedSequence) else seq


def _like(seq: Tensor | PackedSequence, data: Tensor) -> Tensor | PackedSequence:
    return seq._replace(data=data) if isinstance(seq, PackedSequence) else data


def _last_step(seq: Tensor | PackedSequence) -> Tensor:
    """Output at the last real step of each sequence, as (batch, features)."""
    if isinstance(seq, PackedSequence):
        padded, lengths = pad_packed_sequence(seq, batch_first=True)
        return padded[torch.arange(padded.shape[0]), lengths - 1]
    return seq[:, -1]


class StackedLSTM(nn.Module):
    """LSTM layers of LSTMConfig.units, then a linear head on the last hidden state."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        # cached so forward does no per-call config work
        self.fused, self.skips = config.fused, config.skips
        units = config.units
        if self.fused:
            # one fused kernel runs the whole stack; a single layer has nothing to drop between
            self.lstm = nn.LSTM(
                config.input_size,
                units[0],
                num_layers=len(units),
                batch_first=True,
                dropout=config.dropout if len(units) > 1 else 0.0,
            )
        else:
            widths_in = [config.input_size, *units[:-1]]
            self.layers = nn.ModuleList(nn.LSTM(i, h, batch_first=True) for i, h in zip(widths_in, units, strict=False))
            self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(units[-1], config.output_size)
        self._init_forget_bias()

    def _init_forget_bias(self) -> None:
        # gate order in PyTorch is (input, forget, cell, output); b_ih and b_hh are summed
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "bias_ih" in name or "bias_hh" in name:
                    h = p.shape[0] // 4
                    p[h : 2 * h] = self.config.forget_bias if "bias_ih" in name else 0.0

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, time, channels); lengths: real steps per sequence, or None if unpadded.

        Returns (batch, output_size): regression outputs or classification logits.
        """
        seq = x
        if lengths is not None:
            seq = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if self.fused:
            # h_n holds each sequence's last real step, already back in input order
            _, (h_n, _) = self.lstm(seq)
            return self.head(h_n[-1])
        for i, (lstm, skip) in enumerate(zip(self.layers, self.skips, strict=False)):
            out, (h_n, _) = lstm(_like(seq, self.drop(_data(seq))) if i else seq)
            # the skip adds the undropped input, so dropout never touches the identity path
            seq = _like(out, _data(out) + _data(seq)) if skip else out
        # h_n misses the skip, so a residual top layer reads its summed output instead
        return self.head(_last_step(seq) if self.skips[-1] else h_n[-1])

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def save_model(model: StackedLSTM, path: str | PathLike) -> None:
    """Write the config and weights to path; load_model reads them back."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": asdict(model.config), "state_dict": state}, path)


def load_model(path: str | PathLike) -> StackedLSTM:
    """Rebuild a StackedLSTM saved by save_model, on CPU and in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = StackedLSTM(LSTMConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()
