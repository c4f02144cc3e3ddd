"""Shared by the forms of the diagonal recurrence: powers of lambda, and running a form backward
in time."""

from __future__ import annotations

from collections.abc import Callable

import torch


def powers(log_lambda: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """lambda^j for j = start..stop-1, (stop - start, n)."""
    j = torch.arange(start, stop, device=log_lambda.device, dtype=log_lambda.real.dtype)
    return torch.exp(j[:, None] * log_lambda)


def forward_in_time(
    scan: Callable[..., torch.Tensor],
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None,
    reverse: bool,
    **options,
) -> torch.Tensor:
    if not reverse:
        return scan(log_lambda, v, h0, **options)
    return scan(log_lambda, v.flip(1), h0, **options).flip(1)
