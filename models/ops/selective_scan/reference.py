"""The selective scan of Mamba (Gu & Dao, 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces"), Algorithm 2, one time step at a time: the oracle of every other form.

Per channel d and state n, with input-dependent step delta_t, B_t, C_t:

    h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]

The loop runs over `unbind` slices: indexing x[:, t] instead would make autograd's backward
O(L^2). Axis letters: b batch, l time, d channels, n state size.
"""

from __future__ import annotations

import torch


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """u: (b, l, d) input.  delta: (b, l, d) positive steps (after softplus).  A: (d, n),
    negative.  B, C: (b, l, n).  D: (d,) skip or None.  initial_state: (b, d, n) or None (zeros).
    Returns y: (b, l, d) and the final state (b, d, n)."""
    batch, _, channels = u.shape
    h = initial_state
    if h is None:
        h = u.new_zeros(batch, channels, A.shape[-1])
    outputs = []
    for u_t, delta_t, b_t, c_t in zip(u.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1)):
        h = torch.exp(delta_t[:, :, None] * A) * h + (delta_t * u_t)[:, :, None] * b_t[:, None]
        outputs.append((h * c_t[:, None]).sum(-1))
    y = torch.stack(outputs, 1)
    if D is not None:
        y = y + u * D
    return y, h
