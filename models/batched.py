"""S copies of one StackedLSTM trained side by side: weights stacked along a leading member dim.

Each time step of each layer is one batched matrix product for all members, so S seeds of one config cost
about as many operator calls as one. nn.LSTM cannot be vmapped (torch.func has no rule for it), hence the
recurrence below is written out. Members never mix: member s's outputs and gradients depend only on its own
weights and its own inputs, so training the stack is training S separate models.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .lstm import LSTMConfig, StackedLSTM


def _layer_keys(model: StackedLSTM, layer: int) -> dict[str, str]:
    """StackedLSTM state-dict keys of one layer's weights, by BatchedLayer parameter name."""
    prefix, suffix = ("lstm.", f"_l{layer}") if model.fused else (f"layers.{layer}.", "_l0")
    return {name: f"{prefix}{name}{suffix}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


class BatchedLayer(nn.Module):
    """One LSTM layer of every member: weights (members, 4 * hidden, inputs), gates in PyTorch's order (i, f, g, o)."""

    def __init__(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor):
        super().__init__()
        self.weight_ih = nn.Parameter(weight_ih)
        self.weight_hh = nn.Parameter(weight_hh)
        self.bias_ih = nn.Parameter(bias_ih)
        self.bias_hh = nn.Parameter(bias_hh)

    def forward(self, x: Tensor) -> Tensor:
        """x: (members, time, batch, inputs), or (time, batch, inputs) for all members.

        Returns (members, time, batch, hidden).
        """
        members, hidden = self.weight_hh.shape[0], self.weight_hh.shape[2]
        time, batch = x.shape[-3], x.shape[-2]
        # the input half of every step's gates at once: one product over all steps
        bias = (self.bias_ih + self.bias_hh).unsqueeze(1)
        flat = x.reshape(*x.shape[:-3], time * batch, x.shape[-1])
        gates_in = torch.baddbmm(bias, flat.expand(members, -1, -1), self.weight_ih.transpose(1, 2))
        # unbind, not indexing: indexing's backward would add a zero-filled copy of all steps at every step
        steps = gates_in.view(members, time, batch, 4 * hidden).unbind(1)
        w_hh = self.weight_hh.transpose(1, 2)
        h = c = None
        outputs = []
        for step in steps:
            gates = step if h is None else torch.baddbmm(step, h, w_hh)
            gates = gates.float()  # under bf16 autocast the cell state still accumulates in fp32
            i, f, g, o = gates.chunk(4, dim=-1)
            i, f, o, g = i.sigmoid(), f.sigmoid(), o.sigmoid(), g.tanh()
            c = i * g if c is None else torch.addcmul(f * c, i, g)
            h = o * c.tanh()
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class BatchedLSTM(nn.Module):
    """S members of one LSTMConfig, each starting with the weights of the StackedLSTM it was built from.

    forward takes inputs shared by all members (batch, time, channels) or one batch per member
    (members, batch, time, channels), and returns (members, batch, output_size). Variable lengths are read at
    each sequence's last real step, so padding never reaches the head, as packing does in StackedLSTM.
    """

    def __init__(self, models: list[StackedLSTM]):
        super().__init__()
        if not models:
            raise ValueError("BatchedLSTM needs at least one StackedLSTM, got none")
        config = models[0].config
        for i, m in enumerate(models):
            if not isinstance(m, StackedLSTM) or m.config != config:
                raise ValueError(f"models[{i}] is not a StackedLSTM of the first model's config {config!r}")
        self.config: LSTMConfig = config
        self.skips = config.skips
        states = [m.state_dict() for m in models]
        keys = [_layer_keys(models[0], k) for k in range(len(config.units))]

        def stacked(key: str) -> Tensor:
            return torch.stack([s[key].detach() for s in states]).clone()

        self.layers = nn.ModuleList(BatchedLayer(**{n: stacked(k) for n, k in ks.items()}) for ks in keys)
        self.head_weight = nn.Parameter(stacked("head.weight"))
        self.head_bias = nn.Parameter(stacked("head.bias"))
        self._keys = keys
        self._fused = models[0].fused

    @property
    def members(self) -> int:
        """Number of members in the stack."""
        return self.head_bias.shape[0]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x: (batch, time, channels) for every member, or (members, batch, time, channels); lengths: real steps
        per sequence, (batch,) or (members, batch), or None if unpadded. Returns (members, batch, output_size)."""
        # time-major inside: each step then reads one contiguous (members, batch, features) block
        seq = x.transpose(-3, -2)
        for i, (layer, skip) in enumerate(zip(self.layers, self.skips, strict=True)):
            out = layer(F.dropout(seq, self.config.dropout, self.training) if i else seq)
            # the skip adds the undropped input, as StackedLSTM does
            seq = out + seq if skip else out
        if lengths is None:
            last = seq[:, -1]
        else:
            members, _, batch, hidden = seq.shape
            index = (lengths.to(seq.device) - 1).expand(members, batch)
            last = seq.gather(1, index.view(members, 1, batch, 1).expand(members, 1, batch, hidden)).squeeze(1)
        return torch.baddbmm(self.head_bias.unsqueeze(1), last, self.head_weight.transpose(1, 2))

    def member_state_dict(self, s: int) -> dict[str, Tensor]:
        """Member s's weights under StackedLSTM's state-dict keys (copies, detached)."""
        return {key: p[s].detach().clone() for key, p in self._by_key().items()}

    def _by_key(self) -> dict[str, nn.Parameter]:
        """The stacked parameters under the StackedLSTM state-dict key that each member's slice has."""
        params = {
            key: getattr(layer, name)
            for layer, keys in zip(self.layers, self._keys, strict=True)
            for name, key in keys.items()
        }
        return {**params, "head.weight": self.head_weight, "head.bias": self.head_bias}

    def member(self, s: int) -> StackedLSTM:
        """Member s as an ordinary StackedLSTM on the stack's device, in eval mode."""
        # building a StackedLSTM draws initial weights: keep that from shifting the caller's random stream
        with torch.random.fork_rng(devices=[]):
            model = StackedLSTM(self.config)
        model.load_state_dict(self.member_state_dict(s))
        return model.to(self.head_bias.device).eval()

    def unstack(self) -> list[StackedLSTM]:
        """Every member as an ordinary StackedLSTM, in order."""
        return [self.member(s) for s in range(self.members)]

    @torch.no_grad()
    def keep(self, members: list[int]) -> None:
        """Shrinks the stack to these members, in this order; their gradients are dropped."""
        index = torch.as_tensor(members, dtype=torch.long, device=self.head_bias.device)
        for p in self.parameters():
            p.grad = None
            p.data = p.data.index_select(0, index)
