"""The selective scan of Mamba: h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t h_t + D u_t.

Backends: `reference` (one step at a time, the oracle), `chunked` (the loop in chunks recomputed
in the backward, O(B L (D + N)) memory), `triton` (GPU kernels, sequential in time, parallel over
batch and channel blocks; the backward recomputes each chunk's states), `cpu` (the chunked loop in
a compiled, vectorised C++ kernel, built on first use; passed over with one line where it cannot
be built).
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "selective_scan",
    [
        Backend("reference", "models.ops.selective_scan.reference:selective_scan_reference"),
        Backend("chunked", "models.ops.selective_scan.chunked:selective_scan_chunked"),
        Backend(
            "triton",
            "models.ops.selective_scan.triton:selective_scan_triton",
            available=triton_runs_here,
            compiled=True,
        ),
        compiled_cpu_backend("models.ops.selective_scan.cpu:selective_scan_cpu"),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("cpu", "chunked")},
)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    *,
    chunk_size: int = 128,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """u: (b, l, d) input.  delta: (b, l, d) positive steps (after softplus).  A: (d, n),
    negative.  B, C: (b, l, n).  D: (d,) skip or None.  initial_state: (b, d, n) or None (zeros).
    chunk_size: time steps per recomputed chunk (forms that chunk).  backend: None = the run's
    kernel settings (models.ops.dispatch), or a backend name.
    Returns y: (b, l, d) and the final state (b, d, n)."""
    return OP(u, delta, A, B, C, D, initial_state, backend=backend, chunk_size=chunk_size)
