"""State-space duality (SSD): scalar-decay linear recurrences (Dao & Gu, 2024, "Transformers are
SSMs: Generalized Models and Efficient Algorithms Through Structured State Space Duality"), one
time step at a time: the oracle of every other form.

Per head h, with a scalar decay a_t = exp(log_a_t) <= 1 shared by the whole (p, n) state:

    S_t = a_t S_{t-1} + x_t B_t^T        (S_t: (p, n))
    y_t = S_t C_t

With Mamba-2's optional input scale dt (b, l, h) and skip D (h,): x_t -> dt_t x_t in the
recurrence and y_t + D x_t out (scale_and_skip.py).

Axis letters: b batch, l time, h heads, g groups of heads sharing B and C, p head width of x,
n state size.
"""

from __future__ import annotations

import torch

from models.ops.ssd.scale_and_skip import scaled, with_skip


def ssd_reference(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    dt: torch.Tensor | None = None,
    D: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (b, l, h, p).  log_a: (b, l, h), <= 0.  B, C: (b, l, g, n), shared by the h / g
    consecutive heads of each group.  initial_state: (b, h, p, n) or None.  dt: (b, l, h) input
    scale or None.  D: (h,) skip or None.
    Returns y: (b, l, h, p) and the final state (b, h, p, n)."""
    raw, x = x, scaled(x, dt)
    batch, _, heads, width = x.shape
    per_group = heads // B.shape[2]
    B, C = B.repeat_interleave(per_group, 2), C.repeat_interleave(per_group, 2)
    state = initial_state
    if state is None:
        state = x.new_zeros(batch, heads, width, B.shape[-1])
    outputs = []
    for x_t, log_a_t, b_t, c_t in zip(x.unbind(1), log_a.unbind(1), B.unbind(1), C.unbind(1)):
        state = torch.exp(log_a_t)[:, :, None, None] * state + x_t[..., None] * b_t[:, :, None]
        outputs.append((state * c_t[:, :, None]).sum(-1))
    return with_skip(torch.stack(outputs, 1), raw, D), state
