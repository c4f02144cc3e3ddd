"""Performer attention: FAVOR+ (Choromanski, Likhosherstov, Dohan, Song, Gane, Sarlos, Hawkins,
Davis, Mohiuddin, Kaiser, Belanger, Colwell & Weller, 2021, "Rethinking Attention with
Performers").

The softmax kernel exp(q . k) is estimated without bias by positive random features

    phi(x) = exp(w_r . x - |x|^2 / 2) / sqrt(m),   r = 1..m,

with the w_r drawn as blocks of orthogonal rows, each scaled to the length of a Gaussian
vector (so every row is marginally N(0, I) and the estimator stays unbiased while its variance
drops). q and k are scaled by d^-1/4 each, giving exp(q . k / sqrt(d)). Attention is then
linear in L: bidirectional as the `favor` op (models/ops/favor: the PyTorch form, or on CPU a
compiled kernel that never builds the (B, H, L, m) features), causal through the
gated-linear-attention op without decay (models/layers/kernel_attention.py).

Numerical stabilisation: each query's features are divided by exp(its largest exponent) and
all keys of one (row, head) by exp(the largest exponent over its real keys); both factors
cancel between numerator and normaliser, so they are constants to autograd (detached) and the
output is unchanged. Features are redrawn every `redraw_interval` training forwards and fixed
in eval; they are a buffer, so a checkpoint restores the ones it was evaluated with.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.layers.kernel_attention import causal_linear_attention, full_precision
from models.layers.projections import attention_projections, merge_heads, split_heads
from models.ops.dispatch import backend_override
from models.ops.favor import favor_attention
from models.ops.favor.reference import softmax_kernel_features


def orthogonal_gaussian_features(
    n_features: int, dim: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n_features, dim) random projection: blocks of `dim` orthonormal rows (Haar, from the QR
    of a Gaussian matrix with the sign of diag(R) fixed), each row scaled to the norm of an
    independent N(0, I_dim) vector."""
    n_blocks = math.ceil(n_features / dim)
    gaussian = torch.randn(n_blocks, dim, dim, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    rows = q.transpose(-1, -2).reshape(n_blocks * dim, dim)[:n_features]
    norms = torch.randn(n_features, dim, generator=generator).norm(dim=1)
    return rows * norms[:, None]


class PerformerAttention(nn.Module):
    """Multi-head FAVOR+ attention with the softmax kernel.

    d_model: D.  n_heads: H.  qkv_dim: total q/k/v width (default D).  n_features: m random
    features (shared by the heads of a layer).  redraw_interval: draw new features every this
    many training forwards (0 = never).  causal: attend to j <= i only.  chunk_size: chunk
    length of the causal form.  bias: biases in the projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).  reference(x, mask):
    the same with every op in its reference form.
    """

    ops = ("favor", "gated_linear_attention")

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        n_features: int = 256,
        redraw_interval: int = 1000,
        causal: bool = False,
        chunk_size: int = 128,
        bias: bool = False,
    ) -> None:
        super().__init__()
        qkv_dim = qkv_dim or d_model
        self.n_heads = n_heads
        self.head_dim = qkv_dim // n_heads
        self.n_features = n_features
        self.redraw_interval = redraw_interval
        self.causal = causal
        self.chunk_size = chunk_size
        self.forwards_since_redraw = 0
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)
        self.register_buffer("projection", orthogonal_gaussian_features(n_features, self.head_dim))

    @torch.no_grad()
    def redraw_features(self) -> None:
        """Draw a fresh projection (from torch's global generator) in place."""
        fresh = orthogonal_gaussian_features(self.n_features, self.head_dim)
        self.projection.copy_(fresh.to(self.projection))
        self.forwards_since_redraw = 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training and self.redraw_interval > 0:
            if self.forwards_since_redraw >= self.redraw_interval:
                self.redraw_features()
            self.forwards_since_redraw += 1
        q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))
        scale = self.head_dim**-0.25
        # The normaliser is positive but may be small after stabilisation, so the floor is the
        # smallest normal float rather than a fixed epsilon that could swamp it.
        eps = torch.finfo(torch.float32).tiny
        # The exponents reach tens; bf16 would put percent-level errors into every feature.
        with full_precision(x.device):
            projection = self.projection.float()
            q, k = q.float() * scale, k.float() * scale
            if not self.causal:
                y = favor_attention(q, k, v, projection, mask, eps)
            else:
                q_features = softmax_kernel_features(q, projection, is_query=True)
                k_features = softmax_kernel_features(k, projection, is_query=False, mask=mask)
                y = causal_linear_attention(q_features, k_features, v, eps, self.chunk_size)
        return self.out(merge_heads(y))

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
