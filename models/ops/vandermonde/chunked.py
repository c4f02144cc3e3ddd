"""The Vandermonde product of a diagonal state-space system, K_l = sum_n c_n lambda_n^l (S4D, DSS,
H3), without the (h, n, L) table of powers (reference.py builds it: the oracle).

Axis letters: c output channels, h SSM copies (model width), n modes, l time.
"""

from __future__ import annotations

import math

import torch

MAX_EXPONENT = 60.0  # largest real exponent an inner factor may reach (float32 overflows at ~88)


def vandermonde_kernel(
    coefficients: torch.Tensor,
    log_lambda: torch.Tensor,
    length: int,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_n c_n exp(l * log_lambda_n - shift_n) for l = 0..length-1, complex.

    The (h, n, length) table of powers is never built: with l = T i + j (T ~ sqrt(length)),
    lambda^l = lambda^(T i) lambda^j, so the sum is one batched matrix product of a (c T', n)
    and an (n, T) table per channel, O(c h n length) multiply-adds and O(h n sqrt(length))
    exponentials. `shift` (h, n) goes into the outer factor, whose exponent then stays <= 0 when
    shift = Re(log_lambda) (length - 1) for growing modes (DSS). The inner factor of a growing
    mode reaches exp(Re(log_lambda) (T - 1)), so T is capped to keep that below exp(MAX_EXPONENT):
    past it float32 overflows and the product with a padded position's 0 gradient is NaN.

    coefficients: (c, h, n), log_lambda: (h, n) complex, shift: (h, n) or None ->
    (c, h, length) complex.
    """
    block = max(1, math.isqrt(length - 1) + 1)
    growth = float(log_lambda.real.detach().max().clamp(min=0.0))
    if growth > 0:  # a growing mode: cap exp(growth (T - 1)) at exp(MAX_EXPONENT)
        block = max(1, min(block, int(MAX_EXPONENT / growth) + 1))
    blocks = -(-length // block)
    real = log_lambda.real.dtype
    steps = torch.arange(block, device=log_lambda.device, dtype=real)
    starts = block * torch.arange(blocks, device=log_lambda.device, dtype=real)
    outer_exponent = log_lambda[..., None] * starts  # (h, n, blocks)
    if shift is not None:
        outer_exponent = outer_exponent - shift[..., None]
    outer = coefficients[..., None] * torch.exp(outer_exponent)  # (c, h, n, blocks)
    inner = torch.exp(log_lambda[..., None] * steps)  # (h, n, block)
    kernel = torch.einsum("chni,hnj->chij", outer, inner)
    return kernel.reshape(*kernel.shape[:2], blocks * block)[..., :length]
