"""Long convolutions along time computed position by position, O(L^2): the oracle of the FFT
form. The sums (see fft.py):

Causal:        y_t = sum_{s <= t} k_fwd[t - s] u_s
Bidirectional: y_t = sum_{s <= t} k_fwd[t - s] u_s + sum_{s > t} k_bwd[s - t - 1] u_s

Axis letters: b batch, h channels, l time.
"""

from __future__ import annotations

import torch


def direct_conv(
    u: torch.Tensor, k_forward: torch.Tensor, k_backward: torch.Tensor | None = None
) -> torch.Tensor:
    """u: (b, h, l) real, kernels: (h, l) -> (b, h, l)."""
    length = u.shape[-1]
    flipped = k_forward.flip(-1)  # flipped[l - 1 - j] = k_fwd[j]
    outputs = []
    for t in range(length):
        y = (u[..., : t + 1] * flipped[..., length - 1 - t :]).sum(-1)
        if k_backward is not None and t + 1 < length:
            y = y + (u[..., t + 1 :] * k_backward[..., : length - 1 - t]).sum(-1)
        outputs.append(y)
    return torch.stack(outputs, dim=-1)
