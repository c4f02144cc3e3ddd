"""Gated linear attention (Yang, Wang, Shen, Panda & Kim, 2024, "Gated Linear Attention
Transformers with Hardware-Efficient Training"), the GLA layer of Section 4.

Per head, a (K, V) state with a data-dependent diagonal decay:

    alpha_t = sigmoid(x_t W_a1 W_a2 + b_a)^(1/tau)      (low-rank gate, tau = 16)
    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t
    Y = (swish(X W_r + b_r) * LayerNorm_head(O)) W_O

The decay is kept in log space, log alpha = logsigmoid(.) / tau, and the recurrence is computed
by chunks (models/ops/gated_linear_attention); `reference` steps through time.

Bidirectional form (LRA): a forward pass plus a backward pass (the same recurrence over the
reversed sequence, sharing every projection and gate) minus the diagonal term q_t.k_t v_t that
both count, so position t sees s < t through the decays between them, s > t likewise, and
itself once. Keys are zeroed and log alpha set to 0 (alpha = 1) at padded positions, so the
backward pass reaches each row's last real position with an empty state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.projections import split_heads
from models.ops.dispatch import backend_override
from models.ops.gated_linear_attention import gated_attention


class GatedLinearAttention(nn.Module):
    """GLA mixer, bidirectional unless `causal`.

    d_model: D.  n_heads: H.  expand_k, expand_v: key / value widths K = expand_k * D,
    V = expand_v * D (the paper: 0.5 and 1).  gate_low_rank_dim: rank of the decay gate (16).
    gate_logit_normalizer: tau (16).  chunk_size: chunk of the chunked form.  causal: forward
    pass only.  eps: LayerNorm epsilon.

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the same, step
    by step.
    """

    ops = ("gated_linear_attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank_dim: int = 16,
        gate_logit_normalizer: float = 16.0,
        chunk_size: int = 8,
        causal: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        key_dim, value_dim = int(d_model * expand_k), int(d_model * expand_v)
        if key_dim % n_heads or value_dim % n_heads:
            raise ValueError(f"key {key_dim} / value {value_dim} widths not divisible by {n_heads}")
        self.n_heads = n_heads
        self.key_head_dim = key_dim // n_heads
        self.gate_logit_normalizer = gate_logit_normalizer
        self.chunk_size = chunk_size
        self.causal = causal
        self.q_proj = nn.Linear(d_model, key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, value_dim, bias=False)
        self.gate = nn.Sequential(
            nn.Linear(d_model, gate_low_rank_dim, bias=False),
            nn.Linear(gate_low_rank_dim, key_dim, bias=True),
        )
        self.r_proj = nn.Linear(d_model, value_dim, bias=True)  # output gate
        self.out_proj = nn.Linear(value_dim, d_model, bias=False)
        # LayerNorm per head: a GroupNorm with one group per head.
        self.head_norm = nn.GroupNorm(n_heads, value_dim, eps=eps)
        # The authors' code (flash-linear-attention) initialises weights xavier-uniform with
        # gain 2^-2.5 and biases to zero.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=2**-2.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        real = mask[:, None, :, None].to(x.dtype)
        q = split_heads(self.q_proj(x), self.n_heads) * self.key_head_dim**-0.5
        k = split_heads(self.k_proj(x), self.n_heads) * real
        v = split_heads(self.v_proj(x), self.n_heads)
        log_decay = F.logsigmoid(self.gate(x)) / self.gate_logit_normalizer
        log_decay = split_heads(log_decay, self.n_heads) * real  # alpha = 1 at padding
        o = gated_attention(q, k, v, log_decay, None, not self.causal, chunk_size=self.chunk_size)
        o = self.head_norm(o.transpose(1, 2).reshape(batch * length, -1))
        o = o.reshape(batch, length, -1)
        return self.out_proj(F.silu(self.r_proj(x)) * o)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
