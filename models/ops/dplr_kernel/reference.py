"""The S4 kernel by dense matrix powers: build the conjugate-completed N x N bilinear system and
read K_l = C A_bar^l B_bar off it, l = 0..L-1. The oracle of cauchy.py (O(h N^2 L) work).

Axis letters: c output channels, h SSM copies (model width), m / k state (N = 2 x modes).
"""

from __future__ import annotations

import torch


def with_conjugates(x: torch.Tensor) -> torch.Tensor:
    """(..., N/2) -> (..., N): the conjugate-completed vector."""
    return torch.cat([x, x.conj()], dim=-1)


def bilinear_dense(
    dt: torch.Tensor, lam: torch.Tensor, p: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense conjugate-completed A_bar (h, N, N) and B_bar (h, N) of the bilinear transform of
    A = diag(Lambda) - P P^*, from dt (h,) and lam, p, b (h, N/2) complex."""
    p_full = with_conjugates(p)
    a = torch.diag_embed(with_conjugates(lam)) - p_full[..., :, None] * p_full.conj()[..., None, :]
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    half_step = dt[:, None, None] / 2
    backward = eye - half_step * a
    a_bar = torch.linalg.solve(backward, eye + half_step * a)
    b_bar = dt[:, None] * torch.linalg.solve(backward, with_conjugates(b)[..., None])[..., 0]
    return a_bar, b_bar


def true_readout(a_bar: torch.Tensor, c_tilde: torch.Tensor, length: int) -> torch.Tensor:
    """C from S4's C~ = C (I - A_bar^length): a_bar (h, N, N), c_tilde (c, h, N/2) -> (c, h, N)."""
    eye = torch.eye(a_bar.shape[-1], dtype=a_bar.dtype, device=a_bar.device)
    resolvent = (eye - torch.linalg.matrix_power(a_bar, length)).transpose(-1, -2)
    return torch.linalg.solve(resolvent, with_conjugates(c_tilde)[..., None])[..., 0]


def dplr_kernel_reference(
    dt: torch.Tensor,
    lam: torch.Tensor,
    p: torch.Tensor,
    b: torch.Tensor,
    c_tilde: torch.Tensor,
    length: int,
) -> torch.Tensor:
    """Arguments as `dplr_bilinear_kernel`: dt (h,), lam, p, b (h, N/2) complex, c_tilde
    (c, h, N/2) complex -> K (c, h, length) real."""
    a_bar, b_bar = bilinear_dense(dt, lam, p, b)
    c = true_readout(a_bar, c_tilde, length)
    x, kernel = b_bar, []
    for _ in range(length):
        kernel.append(torch.einsum("chm,hm->ch", c, x).real)
        x = torch.einsum("hmk,hk->hm", a_bar, x)
    return torch.stack(kernel, dim=-1)
