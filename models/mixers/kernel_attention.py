"""Shared pieces of the kernelised attention mixers (Linear Transformer, Performer, cosFormer).

Kernelised attention replaces softmax(q k^T) by a feature map phi with phi(q) . phi(k) >= 0:

    y_i = phi(q_i)^T S / phi(q_i)^T z,   S = sum_j phi(k_j) v_j^T,   z = sum_j phi(k_j)

so the cost is linear in L: the (F, E) state S replaces the (L, L) attention matrix
(Katharopoulos et al., 2020, "Transformers are RNNs"). The causal form sums over j <= i only;
it is computed chunk by chunk: an exact (C, C) lower-triangular product inside each chunk plus
a state carried in from earlier chunks by a prefix sum over chunks, so no Python loop runs over
positions and nothing of size L x L is built.

Axis letters: B batch, H heads, L sequence, F feature dimension, E value width per head,
N chunks, C chunk length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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

    Shapes as `linear_attention`. chunk_size: C; memory is O(L/C * F * E) per head for the
    carried states plus O(L * C) for the within-chunk products.
    """
    with full_precision(v.device):
        y = _causal_linear_attention_fp32(
            q_features.float(), k_features.float(), v.float(), eps, chunk_size
        )
    return y.to(v.dtype)


def _causal_linear_attention_fp32(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float, chunk_size: int
) -> torch.Tensor:
    batch, heads, length, n_features = q.shape
    chunk = max(1, min(chunk_size, length))
    pad = (-length) % chunk
    if pad:
        # Zero keys and values at the end add nothing to any sum, and are cut off below.
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    n_chunks = (length + pad) // chunk
    q, k, v = (t.reshape(batch, heads, n_chunks, chunk, t.shape[-1]) for t in (q, k, v))

    # State entering chunk n: sum over the chunks before it (an exclusive prefix sum, made by
    # shifting the inclusive one, so no cancellation from subtracting the chunk back out).
    chunk_state = torch.einsum("bhncf,bhnce->bhnfe", k, v)
    chunk_key_sum = k.sum(dim=3)
    entering_state = torch.cat(
        [torch.zeros_like(chunk_state[:, :, :1]), chunk_state.cumsum(dim=2)[:, :, :-1]], dim=2
    )
    entering_key_sum = torch.cat(
        [torch.zeros_like(chunk_key_sum[:, :, :1]), chunk_key_sum.cumsum(dim=2)[:, :, :-1]], dim=2
    )

    within = torch.einsum("bhncf,bhndf->bhncd", q, k).tril()  # (C, C) causal inside a chunk
    numerator = within @ v + torch.einsum("bhncf,bhnfe->bhnce", q, entering_state)
    normaliser = within.sum(dim=-1) + torch.einsum("bhncf,bhnf->bhnc", q, entering_key_sum)
    y = numerator / normaliser.clamp_min(eps)[..., None]
    return y.reshape(batch, heads, n_chunks * chunk, -1)[:, :, :length]


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
