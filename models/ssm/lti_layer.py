"""The S4 layer around a convolution kernel (Gu, Goel & Ré, 2022; the S4 repository's S4Block
with its LRA settings), shared by S4, S4D and DSS:

    y = K * u + D u  ->  GELU  ->  dropout  ->  Linear(H, 2H)  ->  GLU

A kernel module provides kernel(length) -> (channels, H, length) and recurrence(u) ->
(B, channels, H, L), the same causal convolutions computed step by step. With two channels the
layer is bidirectional: channel 0 runs forward in time and channel 1 backward, starting at the
next position (models/ops/fft_conv).
Axis letters: B batch, L time, H channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.dropout import Dropout
from models.ops.fft_conv import long_conv


def convolve(kernel: nn.Module, u: torch.Tensor, bidirectional: bool) -> torch.Tensor:
    """K * u by FFT. u: (B, H, L) -> (B, H, L)."""
    k = kernel.kernel(u.shape[-1])
    return long_conv(u, k[0], k[1] if bidirectional else None)


def convolve_steps(kernel: nn.Module, u: torch.Tensor, bidirectional: bool) -> torch.Tensor:
    """K * u by running the kernel's recurrence step by step. u: (B, H, L) -> (B, H, L)."""
    y = kernel.recurrence(u)[:, 0]
    if bidirectional:
        # The backward system reads the sequence reversed; its output at reversed position
        # L-2-t holds the sum over inputs after t, and nothing comes after the last position.
        backward = kernel.recurrence(u.flip(-1))[:, 1].flip(-1)
        y = y + F.pad(backward[..., 1:], (0, 1))
    return y


class ConvolutionalSSMLayer(nn.Module):
    """kernel: the SSM kernel module (with 2 channels when bidirectional).  d_model: H.
    bidirectional: use the kernel's second channel backward in time.  dropout: after the GELU.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H) through the FFT convolution;
    reference(x, mask) -> the same through the step-by-step recurrence.
    Padded positions of x arrive zeroed, so they add nothing to either direction.
    """

    ops = ("fft_conv",)  # and the kernel op of the SSM: vandermonde (S4D, DSS), dplr_kernel (S4)

    def __init__(
        self, kernel: nn.Module, d_model: int, bidirectional: bool, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.bidirectional = bidirectional
        self.D = nn.Parameter(torch.randn(d_model))
        self.dropout = Dropout(dropout)
        self.output = nn.Linear(d_model, 2 * d_model)

    def _finish(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = (y + self.D[:, None] * u).transpose(1, 2)  # (B, L, H)
        return F.glu(self.output(self.dropout(F.gelu(y))), dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)
        return self._finish(convolve(self.kernel, u, self.bidirectional), u)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)
        return self._finish(convolve_steps(self.kernel, u, self.bidirectional), u)
