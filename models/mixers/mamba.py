"""Mamba (Gu & Dao, 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"):
the Mamba block's mixer (Section 3.4, Figure 3), made bidirectional for LRA.

x -> in_proj -> (u, z); u -> short causal depthwise conv1d -> SiLU -> selective SSM (delta, B, C
computed from u; S4D-Real A = -(1..N); D skip) -> y; out = out_proj(y * SiLU(z)).

Bidirectional form (LRA): as Vision Mamba's "bidirectional Mamba" (Zhu et al., 2024, "Vision
Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model"), the
projections in_proj / out_proj and the gate z are shared, and each direction has its own conv1d,
x_proj, dt_proj, A and D; the backward direction runs on the reversed sequence and the two
directions' outputs are summed before the gate. Padding stays out of the backward scan: u and
delta are zeroed at padded positions, so exp(delta A) = 1 and delta B u = 0 there and the
reversed scan reaches each row's last real position with a zero state, exactly as if it had
started there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.ops.causal_conv1d import causal_conv1d
from models.ops.dispatch import backend_override
from models.ops.selective_scan import selective_scan
from models.parameter_tags import tag


def inverse_softplus_bias(size: int, dt_min: float, dt_max: float, floor: float) -> torch.Tensor:
    """Biases b with softplus(b) = dt, dt log-uniform in [dt_min, dt_max] (Mamba's dt init)."""
    dt = torch.exp(torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class SelectiveSSM(nn.Module):
    """One direction of a Mamba mixer: conv1d -> SiLU -> selective scan with D skip.

    forward(u: (B, L, E), mask: (B, L) bool) -> (B, L, E); E = expanded width.
    """

    def __init__(
        self,
        d_inner: int,
        d_state: int,
        d_conv: int,
        dt_rank: int,
        dt_min: float,
        dt_max: float,
        dt_init_floor: float,
        ssm_lr: float | None,
        chunk_size: int,
    ) -> None:
        super().__init__()
        self.d_state = d_state
        self.dt_rank = dt_rank
        self.chunk_size = chunk_size
        # Holds the conv's parameters (nn.Conv1d's init and state_dict names); the
        # causal_conv1d op applies them, SiLU fused, without transposing to (B, E, L).
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        # Mamba's dt_proj init: weights uniform(+-dt_rank^-0.5), bias = softplus^-1(dt).
        nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
        with torch.no_grad():
            self.dt_proj.bias.copy_(inverse_softplus_bias(d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-Real: A[:, n] = -(n + 1), stored as log(-A) so that A stays negative.
        real = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(real))
        self.D = nn.Parameter(torch.ones(d_inner))
        for param in (self.A_log, self.D, self.dt_proj.bias):
            tag(param, lr=ssm_lr, weight_decay=0.0)

    def project_dt(self, dt: torch.Tensor) -> torch.Tensor:
        """dt_proj applied to dt (B, L, R) -> (B, L, E), as dt @ W^T + b with W^T made
        contiguous: autograd then forms the weight's gradient as dt^T @ grad, (R, B L) x (B L, E),
        where nn.Linear's backward forms grad^T @ dt, (E, B L) x (B L, R), which the CPU's GEMM
        runs ~10x slower for a rank R of 4 (measured at B L = 12800, E = 128: a Mamba layer's
        dt_proj forward + backward 11-12 ms -> 3.4-4.1 ms, one thread)."""
        flat = dt.reshape(-1, self.dt_rank)
        out = torch.addmm(self.dt_proj.bias, flat, self.dt_proj.weight.t().contiguous())
        return out.view(*dt.shape[:-1], -1)

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        real = mask.unsqueeze(-1).to(u.dtype)
        # Causal depthwise conv and SiLU in one op, channels-last (nn.Conv1d's parameters). The
        # conv bias and the window reaching past the last real token make padded positions
        # non-zero: the op zeroes them again (mask) before the scan.
        u = causal_conv1d(u, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", mask)
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.project_dt(dt)) * real  # delta = 0: padding leaves the state as is
        A = -torch.exp(self.A_log)
        y, _ = selective_scan(u, delta, A, B, C, self.D, chunk_size=self.chunk_size)
        return y


class Mamba(nn.Module):
    """Mamba mixer, bidirectional unless `causal`.

    d_model: D.  d_state: N (16).  d_conv: short conv width (4).  expand: E = expand * D (2).
    dt_rank: rank of the delta projection (default ceil(D / 16)).  dt_min, dt_max,
    dt_init_floor: range of the initial steps.  ssm_lr: learning rate of A, D and the dt bias
    (no weight decay; None = the global rate).  causal: forward scan only.  chunk_size: time
    steps per recomputed chunk of the CPU scan.

    forward(x: (B, L, D), mask: (B, L) bool) -> (B, L, D).  reference(x, mask): the same with
    the step-by-step scan.
    """

    ops = ("selective_scan", "causal_conv1d")

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        ssm_lr: float | None = 1e-3,
        causal: bool = False,
        chunk_size: int = 128,
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        dt_rank = dt_rank or math.ceil(d_model / 16)
        self.causal = causal
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        directions = 1 if causal else 2
        self.directions = nn.ModuleList(
            SelectiveSSM(
                d_inner, d_state, d_conv, dt_rank, dt_min, dt_max, dt_init_floor, ssm_lr, chunk_size
            )
            for _ in range(directions)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = u * mask.unsqueeze(-1).to(u.dtype)
        y = self.directions[0](u, mask)
        if not self.causal:
            y = y + self.directions[1](u.flip(1), mask.flip(1)).flip(1)
        return self.out_proj(y * F.silu(z))

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
