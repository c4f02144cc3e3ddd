"""cosFormer attention (Qin, Sun, Deng, Li, Wei, Lv, Yan, Kong & Zhong, 2022, "cosFormer:
Rethinking Softmax in Attention").

The similarity is relu(q_i) . relu(k_j) * cos(pi/2 * (i - j) / M): non-negative, and larger for
nearby positions. Since cos(a - b) = cos a cos b + sin a sin b, it splits into two linear
kernels, so it is kernelised attention with the features

    phi(q_i) = [relu(q_i) cos(theta_i), relu(q_i) sin(theta_i)],   theta_i = pi/2 * (i+1) / M

(and the same for keys), linear in L, causal by chunked prefix sums.

M: the reference code uses the padded batch length; here M is each row's real length, so that
padding does not change a row's weights (and (i - j) / M stays in (-1, 1), where cos > 0). In
the causal form this makes the weights depend on the row's length, which a classifier knows
up front; an autoregressive decoder would fix M to the maximum length instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.kernel_attention import kernelised_attention
from models.layers.projections import attention_projections, merge_heads, split_heads


def cos_reweighted_features(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x: (B, H, L, E) non-negative, mask: (B, L) bool -> (B, H, L, 2E) fp32, the cos and
    sin halves, zero at padded positions."""
    length = x.shape[2]
    # fp32 angles: bf16 cannot even count past 256.
    real_length = mask.sum(dim=1, keepdim=True).clamp_min(1).float()  # (B, 1)
    position = torch.arange(1, length + 1, device=x.device, dtype=torch.float32)
    theta = (math.pi / 2) * position[None, :] / real_length  # (B, L)
    theta = theta[:, None, :, None]
    real = mask[:, None, :, None].float()
    x = x.float()
    return torch.cat([x * torch.cos(theta), x * torch.sin(theta)], dim=-1) * real


class CosFormerAttention(nn.Module):
    """Multi-head cosFormer attention.

    d_model: D.  n_heads: H.  qkv_dim: total q/k/v width (default D).  causal: attend to
    j <= i only.  chunk_size: chunk length of the causal form.  eps: floor of the normaliser
    (1e-6 as in the reference code).  bias: biases in the projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        causal: bool = False,
        chunk_size: int = 128,
        eps: float = 1e-6,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.chunk_size = chunk_size
        self.eps = eps
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))
        q_features = cos_reweighted_features(F.relu(q), mask)
        k_features = cos_reweighted_features(F.relu(k), mask)
        y = kernelised_attention(q_features, k_features, v, self.causal, self.eps, self.chunk_size)
        return self.out(merge_heads(y))
