"""SSD in Triton, forward and backward, as a special case of the gated-linear-attention kernels
(models/ops/gated_linear_attention/triton.py): Mamba-2's state S_t (p, n) with a scalar decay per
head is GLA's state transposed, with the decay broadcast over the key channels:

    SSD:  S_t = a_t S_{t-1} + x_t B_t^T,           y_t = S_t C_t
    GLA:  T_t = diag(alpha_t) T_{t-1} + k_t^T v_t,  o_t = q_t T_t

with T = S^T (n, p), k = B, v = x, q = C and log alpha_t = log a_t in every one of the n key
channels. This is the route flash-linear-attention takes for its "simple GLA" (a scalar gate per
head). The broadcast gate costs the kernels' per-channel decay arithmetic n times over, which is
small beside the products; the gradient of log a is the sum over the channels of the gate's,
which autograd forms from the expand. Groups (B, C shared by h / g heads) are repeated per head
before the call, so grad B and grad C sum over a group's heads by the same autograd.
"""

from __future__ import annotations

import torch

from models.ops.gated_linear_attention.triton import gated_linear_attention_triton
from models.ops.ssd.scale_and_skip import scaled, with_skip


def ssd_triton(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    dt: torch.Tensor | None = None,
    D: torch.Tensor | None = None,
    *,
    chunk_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (b, l, h, p).  log_a: (b, l, h), <= 0.  B, C: (b, l, g, n), shared by the h / g
    consecutive heads of each group.  initial_state: (b, h, p, n) or None.  dt: (b, l, h) input
    scale or None.  D: (h,) skip or None (scale_and_skip.py).  chunk_size: not
    taken (the kernels' chunk is their tile, see the GLA kernels' docstring).
    Returns y: (b, l, h, p) in x's dtype and the final state (b, h, p, n)."""
    del chunk_size
    raw, x = x, scaled(x, dt)
    batch, length, heads, width = x.shape
    groups, states = B.shape[2], B.shape[3]
    if heads % groups:
        raise ValueError(f"{heads} heads cannot share B, C in {groups} groups")
    per_group = heads // groups
    # (b, l, g, n) -> (b, h, l, n): each group's B and C serve its consecutive heads.
    q = C.repeat_interleave(per_group, dim=2).transpose(1, 2)
    k = B.repeat_interleave(per_group, dim=2).transpose(1, 2)
    v = x.transpose(1, 2)
    log_decay = log_a.transpose(1, 2).unsqueeze(-1).expand(batch, heads, length, states)
    initial = None if initial_state is None else initial_state.transpose(-1, -2)
    o, final = gated_linear_attention_triton(
        q.to(x.dtype), k.to(x.dtype), v, log_decay.to(x.dtype), None, initial
    )
    return with_skip(o.transpose(1, 2), raw, D), final.transpose(-1, -2)
