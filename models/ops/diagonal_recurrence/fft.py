"""The diagonal recurrence as a convolution with the kernel lambda^l, by complex FFT,
O(b n l log l). Axis letters: b batch, l time, n modes.
"""

from __future__ import annotations

import torch

from models.ops.diagonal_recurrence.common import forward_in_time, powers


def _fft(log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    length = v.shape[1]
    kernel = powers(log_lambda, 0, length)  # (l, n): lambda^l
    n = 2 * length  # zero padding: a linear, not circular, convolution
    # FFT along the last, contiguous axis: (b, n, l) is several times faster than along dim 1.
    spectrum = torch.fft.fft(v.transpose(1, 2), n=n) * torch.fft.fft(kernel.T, n=n)
    x = torch.fft.ifft(spectrum)[..., :length].transpose(1, 2)
    if h0 is not None:
        x = x + powers(log_lambda, 1, length + 1) * h0[:, None]
    return x


def diagonal_recurrence_fft(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """Arguments and result as `diagonal_recurrence_reference`."""
    return forward_in_time(_fft, log_lambda, v, h0, reverse)
