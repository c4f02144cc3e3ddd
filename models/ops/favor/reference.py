"""FAVOR+ bidirectional attention in plain PyTorch: the positive random features of the softmax
kernel as (b, h, l, m) tensors, then linear attention by einsum (the oracle of the `favor` op,
and its form on GPUs).

    phi(x) = exp(w_r . x - |x|^2 / 2) / sqrt(m),   r = 1..m

Numerical stabilisation: each query's features are divided by exp(its largest exponent) and
all keys of one (row, head) by exp(the largest exponent over its real keys); both factors
cancel between numerator and normaliser, so they are constants to autograd (detached) and the
output is unchanged.
"""

from __future__ import annotations

import math

import torch


def softmax_kernel_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    is_query: bool,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Positive random features of the softmax kernel.

    x: (B, H, L, d), already scaled by d^-1/4.  projection: (m, d).  mask: (B, L) bool, keys
    only: padded keys get zero features and are left out of the stabiliser.
    Returns (B, H, L, m), non-negative.
    """
    exponent = x @ projection.t() - x.pow(2).sum(dim=-1, keepdim=True) / 2
    if is_query:
        shift = exponent.amax(dim=-1, keepdim=True)
    else:
        real = mask[:, None, :, None]
        shift = exponent.masked_fill(~real, float("-inf")).amax(dim=(-2, -1), keepdim=True)
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))  # no keys
    features = torch.exp(exponent - shift.detach()) / math.sqrt(projection.shape[0])
    if not is_query:
        features = features * real.to(features.dtype)
    return features


def favor_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Shapes as models.ops.favor.favor_attention. Computed in float32 or wider (the sums over L
    lose too much in bf16), with autocast off; returns v's dtype."""
    compute = torch.promote_types(
        torch.promote_types(q.dtype, k.dtype), torch.promote_types(v.dtype, torch.float32)
    )
    with torch.autocast(device_type=v.device.type, enabled=False):
        projection = projection.to(compute)
        q_features = softmax_kernel_features(q.to(compute), projection, is_query=True)
        k_features = softmax_kernel_features(k.to(compute), projection, False, mask)
        values = v.to(compute)
        state = torch.einsum("bhlf,bhle->bhfe", k_features, values)
        normaliser = torch.einsum("bhlf,bhf->bhl", q_features, k_features.sum(dim=2))
        y = torch.einsum("bhlf,bhfe->bhle", q_features, state)
        y = y / normaliser.clamp_min(eps)[..., None]
    return y.to(v.dtype)
