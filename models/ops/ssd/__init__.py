"""State-space duality (SSD): S_t = a_t S_{t-1} + x_t B_t^T, y_t = S_t C_t with a scalar decay
per head, the op of Mamba-2 (x = dt x, log_a = dt A, plus a skip D x: the optional dt and D,
fused by the compiled CPU kernel) and of retention (RetNet: x = v, B = k, C = q,
log_a = log gamma).

Backends: `reference` (one step at a time, the oracle), `chunked` (Listing 1 of the paper:
quadratic form within chunks, states passed between them), `triton` (the gated-linear-attention
kernels with the scalar decay broadcast over the state channels, for CUDA), `cpu` (the recurrence
in a compiled, vectorised C++ kernel, built on first use; passed over with one line where it
cannot be built).
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "ssd",
    [
        Backend("reference", "models.ops.ssd.reference:ssd_reference"),
        Backend("chunked", "models.ops.ssd.chunked:ssd_chunked"),
        Backend(
            "triton",
            "models.ops.ssd.triton:ssd_triton",
            available=triton_runs_here,
            compiled=True,
        ),
        compiled_cpu_backend("models.ops.ssd.cpu:ssd_cpu"),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("cpu", "chunked")},
)


def ssd(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    dt: torch.Tensor | None = None,
    D: torch.Tensor | None = None,
    *,
    chunk_size: int = 32,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (b, l, h, p).  log_a: (b, l, h), <= 0.  B, C: (b, l, g, n), shared by the h / g
    consecutive heads of each group.  initial_state: (b, h, p, n) or None.  dt: (b, l, h) or
    None: Mamba-2's step, the recurrence's input is dt x.  D: (h,) or None: Mamba-2's skip,
    y + D x.  chunk_size: steps per chunk.  backend: None = the run's kernel settings.
    Returns y: (b, l, h, p) and the final state (b, h, p, n)."""
    return OP(x, log_a, B, C, initial_state, dt, D, backend=backend, chunk_size=chunk_size)
