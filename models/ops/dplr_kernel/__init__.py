"""The convolution kernel of S4's diagonal-plus-low-rank system under the bilinear transform.

Backends: `reference` (dense matrix powers, the oracle), `cauchy` (S4's Cauchy + Woodbury
algorithm at the roots of unity, then an inverse FFT). No Triton form: the kernel is computed
once per layer and step on an (h, N/2, L/2) problem, a small part of S4's time.
"""

from __future__ import annotations

import torch

from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "dplr_kernel",
    [
        Backend("reference", "models.ops.dplr_kernel.reference:dplr_kernel_reference"),
        Backend("cauchy", "models.ops.dplr_kernel.cauchy:dplr_bilinear_kernel"),
    ],
    auto={"cuda": ("cauchy",), "cpu": ("cauchy",)},
)


def dplr_kernel(
    dt: torch.Tensor,
    lam: torch.Tensor,
    p: torch.Tensor,
    b: torch.Tensor,
    c_tilde: torch.Tensor,
    length: int,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """dt: (h,) steps; lam, p, b: (h, N/2) complex; c_tilde: (c, h, N/2) complex, S4's
    C~ = C (I - A_bar^length). Returns K (c, h, length) real, K_l = C A_bar^l B_bar."""
    return OP(dt, lam, p, b, c_tilde, length, backend=backend)
