"""Long convolutions along time, per channel, by FFT (reference.py: the direct sum it must equal).

Causal:        y_t = sum_{s <= t} k_fwd[t - s] u_s
Bidirectional: y_t = sum_{s <= t} k_fwd[t - s] u_s + sum_{s > t} k_bwd[s - t - 1] u_s

The backward kernel starts at the next position (the current one is already counted by k_fwd[0]),
as in S4's bidirectional layer, which puts k_bwd reversed at the end of a length-2L kernel and
convolves circularly over 2L: for s > t the circular index 2L - (s - t) lands on k_bwd[s - t - 1].

Axis letters: b batch, h channels, l time.
"""

from __future__ import annotations

import torch


def fft_conv(
    u: torch.Tensor, k_forward: torch.Tensor, k_backward: torch.Tensor | None = None
) -> torch.Tensor:
    """u: (b, h, l) real, kernels: (h, l) -> (b, h, l), O(l log l)."""
    length = u.shape[-1]
    if k_backward is None:
        kernel = torch.nn.functional.pad(k_forward, (0, length))  # zero-padded: no wrap-around
    else:
        kernel = torch.cat([k_forward, k_backward.flip(-1)], dim=-1)
    n = 2 * length
    spectrum = torch.fft.rfft(u, n=n) * torch.fft.rfft(kernel, n=n)
    return torch.fft.irfft(spectrum, n=n)[..., :length]
