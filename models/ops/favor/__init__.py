"""FAVOR+ attention (Choromanski et al., 2021, "Rethinking Attention with Performers"),
bidirectional: positive random features of the softmax kernel for queries and keys, then
linear attention y_i = phi(q_i)^T S / phi(q_i)^T z, the op of the Performer after its
projections.

Backends: `reference` (the features as (b, h, l, m) tensors and linear attention by einsum,
plain PyTorch, any device), `cpu` (the same arithmetic row by row in a compiled, vectorised C++
kernel, forward and backward, that never builds the (b, h, l, m) features; built on first use,
passed over with one line where it cannot be built; it refuses a projection that needs a
gradient, which the Performer's, a buffer, never does).
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "favor",
    [
        Backend("reference", "models.ops.favor.reference:favor_attention_reference"),
        compiled_cpu_backend("models.ops.favor.cpu:favor_attention_cpu"),
    ],
    auto={"cuda": ("reference",), "cpu": ("cpu", "reference")},
)


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """q, k: (b, h, l, d), already scaled by d^-1/4.  v: (b, h, l, e).  projection: (m, d), the
    random features (a buffer: the `cpu` form refuses one that needs a gradient).  mask: (b, l)
    bool, True at real positions (padded keys are left out).  eps: floor of the normaliser.  backend: None =
    the run's kernel settings.  Returns y: (b, h, l, e) in v's dtype, computed in at least
    float32."""
    return OP(q, k, v, projection, mask, eps, backend=backend)
