"""Gated linear attention: S_t = diag(a_t) S_{t-1} + k_t^T v_t, o_t = q_t S_t, the op of GLA,
RWKV-6's WKV (with its bonus u) and, without decay, of causal linear attention (the Linear
Transformer, Performer and cosFormer after their feature maps).

Backends: `reference` (one step at a time, the oracle), `chunked` (exact within-chunk products
in log space and states passed between chunks), `triton` (flash-linear-attention's chunked
kernels, forward and backward, for CUDA; its chunk is its own tile, so it takes no chunk_size),
`cpu` (the recurrence in a compiled, vectorised C++ kernel, built on first use; passed over with
one line where it cannot be built).
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "gated_linear_attention",
    [
        Backend(
            "reference", "models.ops.gated_linear_attention.reference:gated_attention_reference"
        ),
        Backend("chunked", "models.ops.gated_linear_attention.chunked:chunked_gated_attention"),
        Backend(
            "triton",
            "models.ops.gated_linear_attention.triton:gated_linear_attention_triton",
            available=triton_runs_here,
            compiled=True,
        ),
        compiled_cpu_backend("models.ops.gated_linear_attention.cpu:gated_linear_attention_cpu"),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("cpu", "chunked")},
)


def gated_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    *,
    chunk_size: int = 8,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One causal pass. q, k: (b, h, l, k).  v: (b, h, l, v).  log_decay: (b, h, l, k), <= 0, or
    None (no decay).  bonus: (h, k) RWKV-6's u, or None.  initial_state: (b, h, k, v) or None.
    chunk_size: steps per chunk (forms that chunk).  backend: None = the run's kernel settings.
    Returns o: (b, h, l, v) and the final state (b, h, k, v)."""
    return OP(q, k, v, log_decay, bonus, initial_state, backend=backend, chunk_size=chunk_size)


def gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    bidirectional: bool = False,
    chunk_size: int = 8,
) -> torch.Tensor:
    """One causal pass, or (bidirectional) a forward pass plus a backward pass over the reversed
    sequence minus the diagonal s = t that both count.

    q, k, log_decay: (b, h, l, k); v: (b, h, l, v); bonus: (h, k) or None -> o: (b, h, l, v).
    """

    def one_pass(q, k, v, log_decay):
        return gated_linear_attention(q, k, v, log_decay, bonus, chunk_size=chunk_size)[0]

    o = one_pass(q, k, v, log_decay)
    if not bidirectional:
        return o
    flipped_decay = None if log_decay is None else log_decay.flip(2)
    backward = one_pass(q.flip(2), k.flip(2), v.flip(2), flipped_decay).flip(2)
    diagonal_weight = q * k if bonus is None else q * bonus[None, :, None, :] * k
    return o + backward - diagonal_weight.sum(-1, keepdim=True) * v
