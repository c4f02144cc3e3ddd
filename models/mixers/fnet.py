"""FNet Fourier mixing (Lee-Thorp, Ainslie, Eckstein & Ontanon, 2022, "FNet: Mixing Tokens with
Fourier Transforms").

The attention sublayer is replaced by y = Re(DFT_seq(DFT_hidden(x))), a 2D discrete Fourier
transform with no parameters.

Padding: the DFT along the sequence has length L, so zero padding would change every output
(the DFT of a longer, zero-extended signal samples different frequencies). Each row is
therefore transformed over its own real length n only: rows are grouped by n and each group
gets one batched FFT of length n (one FFT call per distinct length in the batch, not per
position). Padded outputs are zero. The transform runs in fp32 (torch's FFT supports half
precision only at power-of-two lengths).
"""

from __future__ import annotations

import torch
from torch import nn


def fourier_mix(x: torch.Tensor) -> torch.Tensor:
    """Re(FFT over the sequence axis of FFT over the hidden axis). (B, L, D) -> (B, L, D)."""
    return torch.fft.fft2(x, dim=(-2, -1)).real


class FourierMixing(nn.Module):
    """FNet's parameter-free token mixing.

    d_model: D (unused; accepted so that every mixer is built alike).

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D); row b is mixed over
    its first mask[b].sum() positions, the rest of its output is zero.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            lengths = mask.sum(dim=1)
            full = x.shape[1]
            if bool((lengths == full).all()):
                return fourier_mix(x).to(dtype)
            y = torch.zeros_like(x)
            for n in lengths.unique().tolist():
                if n == 0:
                    continue
                rows = (lengths == n).nonzero(as_tuple=True)[0]
                y[rows, :n] = fourier_mix(x[rows, :n])
        return y.to(dtype)
