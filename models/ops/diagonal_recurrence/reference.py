"""The complex diagonal recurrence x_t = lambda * x_{t-1} + v_t, step by step: the oracle of the
other forms. Axis letters: b batch, l time, n modes.
"""

from __future__ import annotations

import torch

from models.ops.diagonal_recurrence.common import forward_in_time


def _steps(log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    lam = torch.exp(log_lambda)
    x = torch.zeros_like(v[:, 0]) if h0 is None else h0
    states = []
    for v_t in v.unbind(1):  # unbind slices: indexing v[:, t] makes the backward O(L^2)
        x = lam * x + v_t
        states.append(x)
    return torch.stack(states, dim=1)


def diagonal_recurrence_reference(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """log_lambda: (n,) complex, v: (b, l, n) complex, h0: (b, n) or None -> x (b, l, n);
    reverse: x_t = lambda * x_{t+1} + v_t."""
    return forward_in_time(_steps, log_lambda, v, h0, reverse)
