"""RWKV-6 "Finch" time mixing (Peng, Goldstein, Anthony, Albalak, Alcaide, Biderman, et al.,
2024, "Eagle and Finch: RWKV with Matrix-Valued States and Dynamic Recurrence"), Section 4.

- Token shift with data-dependent interpolation (ddlerp): each of r, k, v, g and the decay
  reads x_t + (x_{t-1} - x_t) * (mu + tanh(x' A) B), with x' = x_t + (x_{t-1} - x_t) mu_x
  (one shared low-rank map A of rank 32 for all five).
- Data-dependent decay: w_t = exp(-exp(d + tanh(x_w A_w) B_w)) per channel (rank 64).
- WKV per head with a matrix state and the bonus u for the current token:
  o_t = r_t (S_{t-1} + diag(u) k_t^T v_t),  S_t = diag(w_t) S_{t-1} + k_t^T v_t,
  computed by chunks (models/ops/gated_linear_attention).
- GroupNorm per head, then the SiLU gate g and the output projection.
The channel-mixing half of an RWKV block is the backbone's feed-forward.

Initialisation follows RWKV-LM's x060 code (layer-dependent mu, decay speeds and zigzag bonus),
with `layer_index` / `n_layers` giving the layer's depth ratio. One change: the first factors
of the two low-rank maps start at uniform(+-1e-4) instead of 0, so that their second factors get
a gradient from the first step (with zeros they only start learning at the second).

Bidirectional form (LRA; the Bi-WKV of Vision-RWKV, Duan et al., 2024, "Vision-RWKV: Efficient
and Scalable Visual Perception with RWKV-Like Architectures", with RWKV-6's decays): a forward
and a backward WKV pass (the backward over the reversed sequence, sharing every parameter)
whose bonus terms are counted once, so position t sees s != t through the decays strictly
between them and itself through u. The token shift stays x_{t-1}. Keys are zeroed and decays set
to 1 at padded positions, so the backward pass starts at each row's last real position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.ops.dispatch import backend_override
from models.ops.gated_linear_attention import gated_attention
from models.parameter_tags import tag

MIX_RANK = 32  # RWKV-6's D_MIX_LORA
DECAY_RANK = 64  # RWKV-6's D_DECAY_LORA


def untouched_by_decay(param: nn.Parameter) -> nn.Parameter:
    """RWKV-LM trains its time-mixing parameters without weight decay."""
    return tag(param, weight_decay=0.0)


class RWKV6TimeMix(nn.Module):
    """RWKV-6 time mixing, bidirectional unless `causal`.

    d_model: D.  n_heads: H (head size D / H; RWKV-6 uses 64).  layer_index, n_layers: this
    layer's depth, which sets the initial token-shift mix and decay speeds.  chunk_size: chunk
    of the chunked WKV.  causal: forward pass only.  eps: GroupNorm epsilon (RWKV-6: 1e-5 *
    head_size_divisor^2 with divisor 8).

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the WKV step by
    step.
    """

    ops = ("gated_linear_attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 4,
        layer_index: int = 0,
        n_layers: int = 1,
        chunk_size: int = 8,
        causal: bool = False,
        eps: float = 64e-5,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.chunk_size = chunk_size
        self.causal = causal
        depth = layer_index / max(n_layers - 1, 1)  # ratio_0_to_1
        shallowness = 1.0 - layer_index / n_layers  # ratio_1_to_almost0
        channel = torch.arange(d_model, dtype=torch.float32) / d_model
        mix = 1.0 - channel.pow(shallowness)
        half_mix = 1.0 - channel.pow(0.5 * shallowness)
        self.mix_x = untouched_by_decay(nn.Parameter(mix.clone()))
        # Static mixes of w, k, v, r, g (in that order).
        static = torch.stack([mix, mix, mix - 0.3 * depth, half_mix, half_mix])
        self.mix_static = untouched_by_decay(nn.Parameter(static))
        self.mix_down = untouched_by_decay(
            nn.Parameter(torch.empty(d_model, 5 * MIX_RANK).uniform_(-1e-4, 1e-4))
        )
        self.mix_up = untouched_by_decay(
            nn.Parameter(torch.empty(5, MIX_RANK, d_model).uniform_(-0.01, 0.01))
        )
        position = torch.arange(d_model, dtype=torch.float32) / max(d_model - 1, 1)
        self.decay_base = untouched_by_decay(
            nn.Parameter(-6.0 + 5.0 * position.pow(0.7 + 1.3 * depth))
        )
        self.decay_down = untouched_by_decay(
            nn.Parameter(torch.empty(d_model, DECAY_RANK).uniform_(-1e-4, 1e-4))
        )
        self.decay_up = untouched_by_decay(
            nn.Parameter(torch.empty(DECAY_RANK, d_model).uniform_(-0.01, 0.01))
        )
        zigzag = ((torch.arange(d_model) + 1) % 3 - 1).float() * 0.1
        bonus = depth * (1.0 - position) + zigzag
        self.bonus = untouched_by_decay(nn.Parameter(bonus.reshape(n_heads, -1)))
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)
        self.head_norm = nn.GroupNorm(n_heads, d_model, eps=eps)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # (B, H, L, D / H)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        real = mask[:, None, :, None].to(x.dtype)
        shift = F.pad(x, (0, 0, 1, -1)) - x  # x_{t-1} - x_t, with x_{-1} = 0
        # ddlerp: one low-rank map gives the data-dependent part of all five mixes.
        mixed = x + shift * self.mix_x
        dynamic = torch.tanh(mixed @ self.mix_down).unflatten(-1, (5, MIX_RANK))
        dynamic = torch.einsum("blfr,frd->fbld", dynamic, self.mix_up)
        xw, xk, xv, xr, xg = x + shift * (self.mix_static[:, None, None] + dynamic)
        r = self._heads(self.receptance(xr))
        k = self._heads(self.key(xk)) * real
        v = self._heads(self.value(xv))
        g = F.silu(self.gate(xg))
        decay = self.decay_base + torch.tanh(xw @ self.decay_down) @ self.decay_up
        log_decay = self._heads(-torch.exp(decay)) * real  # log w_t; w = 1 at padding
        o = gated_attention(
            r,
            k,
            v,
            log_decay,
            self.bonus.to(x.dtype),
            not self.causal,
            chunk_size=self.chunk_size,
        )
        o = self.head_norm(o.transpose(1, 2).reshape(batch * length, -1))
        return self.output(o.reshape(batch, length, -1) * g)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
