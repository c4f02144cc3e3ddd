"""The Hyena operator (Poli, Massaroli, Nguyen, Fu, Dao, Baccus, Bengio, Ermon & Ré, 2023, "Hyena
Hierarchy: Towards Larger Convolutional Language Models", ICML), order N (2 by default):

    x_0, ..., x_{N-1}, v = ShortConv(Linear(u))           (depthwise, causal, 3 taps)
    for n = N-1 .. 1:  v = h_n * (v x_n) + bias_n (v x_n)  (implicit long filter by FFT)
    y = Linear(v x_0)

with the implicit, exponentially windowed filters of models/ssm/hyena_filter.py.

Bidirectional form for the LRA (the paper's operator is causal): each order step gets a second
implicit filter from the same FFN, applied backward in time from the next position on, exactly
as S4's bidirectional layer combines its two kernels (models/ops/fft_conv); the short
convolutions stay causal. `causal=True` is the paper's operator.

Padding: the input projection and short convolution have biases, which would make padded
positions non-zero; they are masked back to zero before the short convolution and before each
long convolution, so the backward filters carry nothing from padding into real positions.
Axis letters: B batch, L time, D width.
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers.dropout import Dropout
from models.ops.dispatch import backend_override
from models.ops.fft_conv import long_conv
from models.ssm.hyena_filter import HyenaFilter


class Hyena(nn.Module):
    """Hyena operator.

    d_model: D.  max_length: the filters' positional grid (the longest sequence).  order: N >= 2.
    filter_order: width of the filter FFN.  emb_dim: positional encoding width (odd, >= 3).
    short_filter_order: taps of the short depthwise convolution.  frequency: initial frequency
    of the Sin activations.  dropout: on the gated products.  ssm_lr: learning rate (no weight
    decay) of the filter FFN.  positional_lr: of the positional encoding.  causal: the paper's
    unidirectional operator.

    forward(x: (B, L, D), mask: (B, L)) -> (B, L, D) with FFT convolutions;  reference(x, mask):
    the same with the long convolutions summed directly, position by position.
    """

    ops = ("fft_conv",)

    def __init__(
        self,
        d_model: int,
        max_length: int,
        order: int = 2,
        filter_order: int = 64,
        emb_dim: int = 3,
        short_filter_order: int = 3,
        frequency: float = 1.0,
        dropout: float = 0.0,
        ssm_lr: float = 1e-3,
        positional_lr: float = 1e-5,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if order < 2:
            raise ValueError(f"Hyena order must be >= 2, got {order}")
        self.d_model, self.order, self.causal = d_model, order, causal
        width = (order + 1) * d_model
        self.in_proj = nn.Linear(d_model, width)
        self.short_filter = nn.Conv1d(
            width, width, short_filter_order, groups=width, padding=short_filter_order - 1
        )
        directions = 1 if causal else 2
        self.filter = HyenaFilter(
            directions * (order - 1) * d_model,
            max_length,
            decay_channels=d_model,
            emb_dim=emb_dim,
            filter_order=filter_order,
            frequency=frequency,
            filter_lr=ssm_lr,
            positional_lr=positional_lr,
        )
        self.filter_bias = nn.Parameter(torch.randn(order - 1, d_model))
        self.dropout = Dropout(dropout)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        real = mask[:, None, :].to(x.dtype)  # (B, 1, L)
        u = self.in_proj(x).transpose(1, 2) * real
        u = self.short_filter(u)[..., :length]  # causal: drop the right padding's outputs
        *gates, v = u.split(self.d_model, dim=1)
        filters = self.filter(length).view(-1, self.order - 1, self.d_model, length)
        for step, gate in enumerate(reversed(gates[1:])):
            v = self.dropout(v * gate) * real
            backward = None if self.causal else filters[1, step]
            v = long_conv(v, filters[0, step], backward) + self.filter_bias[step, :, None] * v
        return self.out_proj((v * gates[0]).transpose(1, 2))

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
