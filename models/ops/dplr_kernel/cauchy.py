"""S4's kernel algorithm (Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with
Structured State Spaces", Algorithm 1) for a diagonal-plus-low-rank continuous A = Lambda - P Q^*
discretised with the bilinear transform: the kernel's generating function at the L roots of unity
is a Cauchy sum over the diagonal, corrected for the low-rank term by the Woodbury identity, and an
inverse FFT gives K. One mode of each conjugate pair is passed; the kernel is that of the
conjugate-completed (real) system. reference.py computes the same kernel by dense matrix powers.

Axis letters: c output channels, h SSM copies (model width), n modes, z frequency.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def roots_of_unity(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """omega_k = exp(-2 pi i k / length) for k = 0..length//2 (the rfft frequencies), (Z,)."""
    k = torch.arange(length // 2 + 1, device=device, dtype=torch.float64)
    return torch.exp(-2j * math.pi * k / length).to(dtype)


def bilinear_cauchy_sums(
    weights: torch.Tensor, dt_lambda: torch.Tensor, omega: torch.Tensor
) -> torch.Tensor:
    """S_z = sum_n w_n r_n(omega_z) + conj(w_n) conj-mode term, with r_n(omega) =
    2 / (2 (1 - omega) - (1 + omega) dt lambda_n).

    r_n is S4's resolvent dt / (2(1-omega)/(1+omega) - dt lambda_n) already multiplied by the
    bilinear factor 2 / (1 + omega); written this way it stays finite at omega = -1 (the Nyquist
    frequency of an even length), where S4's form divides by zero.

    weights: (..., h, n) complex, dt_lambda: (h, n) complex, omega: (z,) -> (..., h, z).
    """
    twice_one_minus, one_plus = 2 * (1 - omega), 1 + omega
    resolvent = 2 / (twice_one_minus - one_plus * dt_lambda[..., None])  # (h, n, z)
    resolvent_conj = 2 / (twice_one_minus - one_plus * dt_lambda.conj()[..., None])
    return torch.einsum("...hn,hnz->...hz", weights, resolvent) + torch.einsum(
        "...hn,hnz->...hz", weights.conj(), resolvent_conj
    )


def dplr_bilinear_kernel(
    dt: torch.Tensor,
    lam: torch.Tensor,
    p: torch.Tensor,
    b: torch.Tensor,
    c_tilde: torch.Tensor,
    length: int,
    cauchy_sums: Callable[..., torch.Tensor] = bilinear_cauchy_sums,
) -> torch.Tensor:
    """Kernel of the bilinear discretisation of A = diag(Lambda) - P P^* (rank 1), for the
    conjugate-completed system.

    dt: (h,) step sizes; lam, p, b: (h, n) complex; c_tilde: (c, h, n) complex, S4's
    C~ = C (I - A_bar^length), which makes the generating function at the `length` roots of unity
    exactly the truncated kernel. Returns K (c, h, length) real: K_l = C A_bar^l B_bar.
    cauchy_sums: what computes the Cauchy sums (`bilinear_cauchy_sums`'s signature); the Triton
    backend passes its kernels (triton.py).
    """
    omega = roots_of_unity(length, lam.dtype, lam.device)
    dt_ = dt[:, None]
    q = p.conj()
    # Rows: B, P; columns: C~ (c of them), Q. Every pair gives one Cauchy sum (dt folded in);
    # all of them share one resolvent.
    right = torch.cat([c_tilde, q[None]], dim=0)  # (c+1, h, n)
    weights = torch.stack([b, p])[:, None] * dt_ * right  # (2, c+1, h, n)
    sums_b, sums_p = cauchy_sums(weights, dt_ * lam, omega)  # 2 x (c+1, h, z)
    k00, k0q = sums_b[:-1], sums_b[-1:]  # C~ R B, Q^* R B   (scaled by 2/(1+omega))
    kp0, kpq = sums_p[:-1], sums_p[-1:]  # C~ R P, Q^* R P
    # Woodbury: C (R^-1 + P Q^*)^-1 B = C R B - (C R P)(Q^* R B) / (1 + Q^* R P). Each k carries
    # the factor 2/(1+omega), so the correction term needs (1+omega)/2 once more.
    one_plus = 1 + omega
    spectrum = k00 - kp0 * k0q * one_plus / (2 + one_plus * kpq)
    return torch.fft.irfft(spectrum, n=length)
