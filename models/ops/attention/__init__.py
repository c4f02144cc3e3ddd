"""Softmax attention over a pattern (full, sliding window, blocks, plus global keys; causal or
not) with a key padding mask: the op of `transformer`, `sliding_window`, `local_attention` and
`longformer`.

Backends: `reference` (explicit (L, L) scores, the oracle), `chunked` (torch's fused SDPA; for
windows and blocks one fused call over query blocks that gather only their keys), `triton`
(FlashAttention-2 kernels that skip the key tiles outside the pattern; triton.py).
"""

from __future__ import annotations

import torch

from models.ops.attention.pattern import FULL, AttentionPattern
from models.ops.dispatch import Backend, KernelOp, triton_runs_here

TRITON_MAX_HEAD_DIM = 128  # E and Ev; larger tiles would not fit the registers
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def triton_available(tensors) -> str | None:
    """Where the Triton kernels run (CUDA, or the interpreter), on the dtypes and head dims
    they take. tensors: the op's tensor arguments (q, k, v, key_valid)."""
    reason = triton_runs_here(tensors)
    if reason is not None or len(tensors) < 3:
        return reason
    q, _, v = tensors[:3]
    if q.dtype not in TRITON_DTYPES:
        return f"the Triton attention kernels take {TRITON_DTYPES}, got {q.dtype}"
    if max(q.shape[-1], v.shape[-1]) > TRITON_MAX_HEAD_DIM:
        return f"the Triton attention kernels take head dims <= {TRITON_MAX_HEAD_DIM}"
    return None


OP = KernelOp(
    "attention",
    [
        Backend("reference", "models.ops.attention.reference:attention_reference"),
        Backend("chunked", "models.ops.attention.chunked:attention_chunked"),
        Backend(
            "triton",
            "models.ops.attention.triton:attention_triton",
            available=triton_available,
            compiled=True,
        ),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("chunked",)},
)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    pattern: AttentionPattern = FULL,
    dropout: float = 0.0,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """q, k: (B, H, L, E), v: (B, H, L, Ev), key_valid: (B, L) bool (False = padding).
    pattern: which keys each query may see.  dropout: on the attention probabilities (pass 0 in
    evaluation).  backend: None = the run's kernel settings.  Returns (B, H, L, Ev); a query
    with no allowed key (only ever a padded one) has unspecified output."""
    return OP(q, k, v, key_valid, pattern, dropout, backend=backend)


__all__ = ["AttentionPattern", "attention"]
