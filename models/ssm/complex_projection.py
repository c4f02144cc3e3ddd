"""Real <-> complex linear maps by real matrix products (a complex matmul on CPU is several
real ones anyway, and the input and output here are real)."""

from __future__ import annotations

import torch


def real_to_complex(u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """u (..., h) real, weight (n, h) complex -> u @ weight^T (..., n) complex."""
    return torch.complex(u @ weight.real.T, u @ weight.imag.T)


def complex_to_real(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Re(x @ weight^T): x (..., n) complex, weight (h, n) complex -> (..., h) real."""
    return x.real @ weight.real.T - x.imag @ weight.imag.T
