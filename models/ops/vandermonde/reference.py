"""The Vandermonde product with its whole (c, h, n, L) table of powers: the oracle of chunked.py.

Axis letters: c output channels, h SSM copies (model width), n modes, l time.
"""

from __future__ import annotations

import torch


def vandermonde_reference(
    coefficients: torch.Tensor,
    log_lambda: torch.Tensor,
    length: int,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_n c_n exp(l * log_lambda_n - shift_n) for l = 0..length-1.
    coefficients: (c, h, n), log_lambda: (h, n) complex, shift: (h, n) or None ->
    (c, h, length) complex."""
    lags = torch.arange(length, device=log_lambda.device, dtype=log_lambda.real.dtype)
    exponent = log_lambda[..., None] * lags  # (h, n, l)
    if shift is not None:
        exponent = exponent - shift[..., None]
    return torch.einsum("chn,hnl->chl", coefficients, torch.exp(exponent))
