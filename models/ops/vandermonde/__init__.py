"""The Vandermonde kernel of a diagonal SSM, K_l = sum_n c_n exp(l log_lambda_n - shift_n): the
convolution kernel of S4D, DSS and H3's long SSM.

Backends: `reference` (the whole table of powers, the oracle), `chunked` (l = T i + j: a batched
product of a (c T', n) and an (n, T) table, O(h n sqrt(L)) exponentials), `triton` (GPU kernels,
forward and backward: one exponential per power, phases from a per-program table, nothing but K
written; see triton.py).
"""

from __future__ import annotations

import torch

from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "vandermonde",
    [
        Backend("reference", "models.ops.vandermonde.reference:vandermonde_reference"),
        Backend("chunked", "models.ops.vandermonde.chunked:vandermonde_kernel"),
        Backend(
            "triton",
            "models.ops.vandermonde.triton:vandermonde_triton",
            available=triton_runs_here,
            compiled=True,
        ),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("chunked",)},
)


def vandermonde(
    coefficients: torch.Tensor,
    log_lambda: torch.Tensor,
    length: int,
    shift: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """coefficients: (c, h, n) complex, log_lambda: (h, n) complex, shift: (h, n) real, complex
    (DSS shifts the phase too) or None -> (c, h, length) complex. backend: None = the run's
    settings."""
    return OP(coefficients, log_lambda, length, shift, backend=backend)
