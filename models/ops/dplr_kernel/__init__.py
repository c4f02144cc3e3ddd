"""The convolution kernel of S4's diagonal-plus-low-rank system under the bilinear transform.

Backends: `reference` (dense matrix powers, the oracle), `cauchy` (S4's Cauchy + Woodbury
algorithm at the roots of unity, then an inverse FFT), `triton` (the same algorithm with the
Cauchy sums by Triton kernels, which never store the (h, n, L/2) resolvent that the PyTorch form
and its autograd keep; see triton.py).
"""

from __future__ import annotations

import torch

from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "dplr_kernel",
    [
        Backend("reference", "models.ops.dplr_kernel.reference:dplr_kernel_reference"),
        Backend("cauchy", "models.ops.dplr_kernel.cauchy:dplr_bilinear_kernel"),
        Backend(
            "triton",
            "models.ops.dplr_kernel.triton:dplr_kernel_triton",
            available=triton_runs_here,
            compiled=True,
        ),
    ],
    auto={"cuda": ("triton", "cauchy"), "cpu": ("cauchy",)},
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
