"""Mamba-2 (Dao & Gu, 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms
Through Structured State Space Duality"): the Mamba-2 block's mixer (Section 7, Figure 6),
made bidirectional for LRA.

x -> in_proj -> (z, xBC, dt) in parallel; xBC -> short causal depthwise conv1d -> SiLU ->
(x, B, C) with B, C shared by groups of heads; per head a scalar-times-identity A = -exp(A_log)
and a step dt = softplus(dt + dt_bias); the SSM is computed by the chunked SSD algorithm
(models/ops/ssd); D skip per head; y -> RMSNorm(y * SiLU(z)) (the gated norm, norm after the
gate) -> out_proj.

Bidirectional form (LRA): as for Mamba (Vision Mamba's scheme), in_proj, the gated norm and
out_proj are shared, and each direction has its own conv1d, dt_bias, A_log and D; the backward
direction runs on the reversed sequence and the two outputs are summed before the gated norm.
x and dt are zeroed at padded positions (dt = 0 makes the decay exp(dt A) = 1 and the input
dt x = 0), so the reversed scan starts each row at its last real position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.mixers.mamba import inverse_softplus_bias
from models.ops.causal_conv1d import causal_conv1d
from models.ops.dispatch import backend_override
from models.ops.ssd import ssd
from models.parameter_tags import tag


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * SiLU(z)) over groups of `group_size` channels, with a learned scale.
    forward(y: (B, L, E), z: (B, L, E)) -> (B, L, E)."""

    def __init__(self, width: int, group_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.group_size = group_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = y * F.silu(z)
        groups = y.unflatten(-1, (-1, self.group_size))
        groups = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + self.eps)
        return groups.flatten(-2) * self.weight


class SSDDirection(nn.Module):
    """One direction of a Mamba-2 mixer: conv1d -> SiLU -> SSD with D skip.

    forward(xBC: (B, L, E + 2 G N), dt: (B, L, H), mask: (B, L)) -> (B, L, E).
    """

    def __init__(
        self,
        d_inner: int,
        n_heads: int,
        n_groups: int,
        d_state: int,
        d_conv: int,
        dt_min: float,
        dt_max: float,
        dt_init_floor: float,
        A_init_range: tuple[float, float],
        ssm_lr: float | None,
        chunk_size: int,
    ) -> None:
        super().__init__()
        self.d_inner = d_inner
        self.n_heads = n_heads
        self.n_groups = n_groups
        self.d_state = d_state
        self.chunk_size = chunk_size
        channels = d_inner + 2 * n_groups * d_state
        # Holds the conv's parameters (nn.Conv1d's init and state_dict names); the
        # causal_conv1d op applies them, SiLU fused, without transposing to (B, C, L).
        self.conv1d = nn.Conv1d(channels, channels, d_conv, groups=channels, padding=d_conv - 1)
        self.dt_bias = nn.Parameter(inverse_softplus_bias(n_heads, dt_min, dt_max, dt_init_floor))
        # A per head uniform in A_init_range (Mamba-2's default (1, 16)), stored as log(-A).
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(n_heads))
        for param in (self.dt_bias, self.A_log, self.D):
            tag(param, lr=ssm_lr, weight_decay=0.0)

    def forward(self, xBC: torch.Tensor, dt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = xBC.shape
        real = mask.unsqueeze(-1).to(xBC.dtype)
        # Causal depthwise conv and SiLU in one op, channels-last (nn.Conv1d's parameters);
        # padding re-zeroed by the op after the conv (bias, window past the last real token).
        xBC = causal_conv1d(xBC, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", mask)
        group_width = self.n_groups * self.d_state
        x, B, C = xBC.split([self.d_inner, group_width, group_width], dim=-1)
        x = x.unflatten(-1, (self.n_heads, -1))  # (B, L, H, P)
        B, C = (t.unflatten(-1, (self.n_groups, self.d_state)) for t in (B, C))  # (B, L, G, N)
        dt = F.softplus(dt + self.dt_bias) * real  # (B, L, H); 0 at padding
        log_a = dt * -torch.exp(self.A_log)
        # The recurrence's input dt x and the skip D x are the op's (fused on CPU).
        y, _ = ssd(x, log_a, B, C, None, dt, self.D, chunk_size=self.chunk_size)
        return y.reshape(batch, length, self.d_inner)


class Mamba2(nn.Module):
    """Mamba-2 mixer, bidirectional unless `causal`.

    d_model: D.  d_state: N.  d_conv: short conv width (4).  expand: E = expand * D (2).
    headdim: P, the width of a head (H = E / P heads).  n_groups: G groups sharing B and C.
    dt_min, dt_max, dt_init_floor: range of the initial steps.  A_init_range: range of -A.
    ssm_lr: learning rate of A, D and the dt bias (no weight decay; None = the global rate).
    causal: forward scan only.  chunk_size: SSD chunk length.

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the same with
    the step-by-step recurrence.
    """

    ops = ("ssd", "causal_conv1d")

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 32,
        n_groups: int = 1,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        ssm_lr: float | None = 1e-3,
        causal: bool = False,
        chunk_size: int = 32,
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"expand * d_model = {d_inner} is not divisible by headdim {headdim}")
        n_heads = d_inner // headdim
        if n_heads % n_groups:
            raise ValueError(f"{n_heads} heads cannot be split into {n_groups} groups")
        self.causal = causal
        self.d_inner = d_inner
        self.n_heads = n_heads
        conv_width = d_inner + 2 * n_groups * d_state
        self.in_proj = nn.Linear(d_model, d_inner + conv_width + n_heads, bias=False)
        self.directions = nn.ModuleList(
            SSDDirection(
                d_inner,
                n_heads,
                n_groups,
                d_state,
                d_conv,
                dt_min,
                dt_max,
                dt_init_floor,
                tuple(A_init_range),
                ssm_lr,
                chunk_size,
            )
            for _ in range(1 if causal else 2)
        )
        self.norm = GatedRMSNorm(d_inner, group_size=d_inner // n_groups)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.conv_width = conv_width

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z, xBC, dt = self.in_proj(x).split([self.d_inner, self.conv_width, self.n_heads], -1)
        xBC = xBC * mask.unsqueeze(-1).to(xBC.dtype)
        y = self.directions[0](xBC, dt, mask)
        if not self.causal:
            y = y + self.directions[1](xBC.flip(1), dt.flip(1), mask.flip(1)).flip(1)
        return self.out_proj(self.norm(y, z))

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
