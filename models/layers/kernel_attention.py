"""Shared pieces of the kernelised attention mixers (Linear Transformer, Performer, cosFormer).

Kernelised attention replaces softmax(q k^T) by a feature map phi with phi(q) . phi(k) >= 0:

    y_i = phi(q_i)^T S / phi(q_i)^T z,   S = sum_j phi(k_j) v_j^T,   z = sum_j phi(k_j)

so the cost is linear in L: the (F, E) state S replaces the (L, L) attention matrix
(Katharopoulos et al., 2020, "Transformers are RNNs"). The causal form sums over j <= i only;
it is the gated-linear-attention op with no decay (chunked: an exact (C, C) lower-triangular
product inside each chunk plus a state carried in by a prefix sum over chunks; nothing of size
L x L is built).

Axis letters: B batch, H heads, L sequence, F feature dimension, E value width per head,
N chunks, C chunk length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops.gated_linear_attention import gated_linear_attention


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0 (Katharopoulos et al., 2020), elementwise on (..., E)."""
    return F.elu(x) + 1.0


def full_precision(device: torch.device):
    """A context in which autocast is off, so that the sums over L stay in fp32."""
    return torch.autocast(device_type=device.type, enabled=False)


def linear_attention(
    q_features: torch.Tensor, k_features: torch.Tensor, v: torch.Tensor, eps: float
) -> torch.Tensor:
    """Bidirectional kernelised attention.

    q_features, k_features: (B, H, L, F), non-negative; k_features must be zero at padded
    positions (that is how padded keys are excluded).  v: (B, H, L, E).  eps: floor of the
    normaliser phi(q_i) . z.  Returns (B, H, L, E) in v's dtype, computed in fp32 with autocast
    off (the sums over L lose too much in bf16).
    """
    with full_precision(v.device):
        q, k, values = q_features.float(), k_features.float(), v.float()
        state = torch.einsum("bhlf,bhle->bhfe", k, values)
        normaliser = torch.einsum("bhlf,bhf->bhl", q, k.sum(dim=2))
        y = torch.einsum("bhlf,bhfe->bhle", q, state) / normaliser.clamp_min(eps)[..., None]
    return y.to(v.dtype)


def causal_linear_attention(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    v: torch.Tensor,
    eps: float,
    chunk_size: int = 128,
) -> torch.Tensor:
    """Causal kernelised attention, y_i = sum_{j<=i} (phi_i . phi_j) v_j / sum_{j<=i} phi_i . phi_j.

    Shapes as `linear_attention`. Numerator and normaliser are the gated-linear-attention op
    without decay (models/ops/gated_linear_attention), the normaliser with values of ones; in
    fp32 with autocast off. chunk_size: C, positions per chunk of that op.
    """
    with full_precision(v.device):
        q, k, values = q_features.float(), k_features.float(), v.float()
        numerator, _ = gated_linear_attention(q, k, values, None, chunk_size=chunk_size)
        ones = values.new_ones(*values.shape[:-1], 1)
        normaliser, _ = gated_linear_attention(q, k, ones, None, chunk_size=chunk_size)
        y = numerator / normaliser.clamp_min(eps)
    return y.to(v.dtype)


def kernelised_attention(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    eps: float,
    chunk_size: int = 128,
) -> torch.Tensor:
    """`causal_linear_attention` or `linear_attention`; shapes as there."""
    if causal:
        return causal_linear_attention(q_features, k_features, v, eps, chunk_size)
    return linear_attention(q_features, k_features, v, eps)
