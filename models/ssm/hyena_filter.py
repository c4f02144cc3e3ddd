"""Hyena's implicit long filter (Poli, Massaroli, Nguyen, Fu, Dao, Baccus, Bengio, Ermon & Ré,
2023, "Hyena Hierarchy: Towards Larger Convolutional Language Models", section 3.3; the safari
code's HyenaFilter):

    h_t = FFN(PositionalEncoding(t)) * exp(-|delta_c| t)

- the positional encoding of position l on a grid of max_length points is [t, cos, sin] of
  (emb_dim - 1) / 2 frequency bands, t = l / (max_length - 1) in [0, 1];
- the FFN is Linear -> Sin -> (Linear -> Sin) x num_inner -> Linear (no bias), the three Sin
  activations sharing one trainable frequency vector initialised to `frequency`;
- the window decays at rates |delta_c| spread linearly over the channels between
  log(target) / slow_decay_pct and log(target) / fast_decay_pct (not trained, as in safari).

The filter of position l never depends on the input's length, so padding changes nothing.
The FFN takes `filter_lr` and no weight decay, the positional encoding `positional_lr`.
Axis letters: l positions, e encoding width, c filter channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.parameter_tags import tag
from models.ssm.parameters import ssm_parameter


class Sin(nn.Module):
    """sin(freq * x) with a trainable frequency per feature. forward((..., d)) -> (..., d)."""

    def __init__(self, dim: int, frequency: float) -> None:
        super().__init__()
        self.freq = nn.Parameter(frequency * torch.ones(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class HyenaFilter(nn.Module):
    """channels: filters produced.  max_length: the positional grid.  decay_channels: the decay
    rates span this many channels and repeat across the rest (the filters of one order step and
    direction share the safari range).  emb_dim: odd, >= 3.  filter_order: FFN width.

    forward(length <= max_length) -> (channels, length).
    """

    def __init__(
        self,
        channels: int,
        max_length: int,
        decay_channels: int | None = None,
        emb_dim: int = 3,
        filter_order: int = 64,
        num_inner_mlps: int = 2,
        frequency: float = 1.0,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        target: float = 1e-2,
        filter_lr: float = 1e-3,
        positional_lr: float = 1e-5,
    ) -> None:
        super().__init__()
        if emb_dim % 2 == 0 or emb_dim < 3:
            raise ValueError(f"emb_dim must be odd and >= 3 (time, cos, sin); got {emb_dim}")
        self.max_length = max_length
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, max_length)[:, None]  # (l, 1)
        angle = 2 * math.pi * torch.arange(max_length, dtype=torch.float32)[:, None] / max_length
        freqs = torch.linspace(1e-4, bands - 1, bands)[None, :]
        z = torch.exp(-1j * freqs * angle)
        self.z = ssm_parameter(torch.cat([t, z.real, z.imag], dim=-1), positional_lr)  # (l, e)
        self.register_buffer("t", t, persistent=False)
        sin = Sin(filter_order, frequency)
        layers = [nn.Linear(emb_dim, filter_order), sin]
        for _ in range(num_inner_mlps):
            layers += [nn.Linear(filter_order, filter_order), sin]
        layers.append(nn.Linear(filter_order, channels, bias=False))
        self.ffn = nn.Sequential(*layers)
        for param in self.ffn.parameters():
            tag(param, lr=filter_lr, weight_decay=0.0)
        decay_channels = decay_channels or channels
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        deltas = torch.linspace(min_decay, max_decay, decay_channels)
        self.register_buffer("deltas", deltas.repeat(channels // decay_channels), persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        if length > self.max_length:
            raise ValueError(f"Hyena filters cover max_length={self.max_length}; got {length}")
        h = self.ffn(self.z[:length])  # (l, c)
        window = torch.exp(-self.t[:length] * self.deltas.abs())
        return (h * window).T
