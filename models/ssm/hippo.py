"""HiPPO-LegS (Gu, Dao, Ermon, Rudra & Ré, 2020, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections") and the structured forms of it that S4, S4D, DSS and S5 initialise from.

LegS is A[i, k] = -sqrt(2i+1) sqrt(2k+1) below the diagonal, -(i+1) on it, 0 above; B[i] =
sqrt(2i+1). Adding P P^T with P[i] = sqrt(i + 1/2) makes it normal (S4, Gu, Goel & Ré, 2022):
A + P P^T = -1/2 I + S with S skew-symmetric, so A = V (Lambda - P~ P~^*) V^* with Lambda =
-1/2 + i * eig(S / i) and unitary V. Eigenvalues come in conjugate pairs; the models keep one of
each pair (N/2 modes) and take twice the real part, as the S4 code does.

Everything here is float64 / complex128 and computed once at initialisation.
"""

from __future__ import annotations

import math

import torch


def legs_matrices(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LegS transition A (n, n) and input B (n,), float64."""
    q = torch.arange(n, dtype=torch.float64)
    root = torch.sqrt(2 * q + 1)
    a = -(root[:, None] * root[None, :]).tril(-1) - torch.diag(q + 1)
    return a, root.clone()


def legs_normal_plus_low_rank(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A_normal (n, n), P (n,), B (n,)) with LegS A = A_normal - P P^T; A_normal + I/2 is
    skew-symmetric."""
    a, b = legs_matrices(n)
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    return a + p[:, None] * p[None, :], p, b


def legs_diagonal_plus_low_rank(
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """LegS in the diagonal basis, one mode of each conjugate pair (negative imaginary parts, the
    S4 code's convention).

    Returns Lambda (n/2,), P~ = V^* P (n/2,), B~ = V^* B (n/2,) complex128 and V (n, n/2): with
    V_full = [V, conj(V)], A_legs = V_full (diag(Lambda_full) - P~_full P~_full^*) V_full^*.
    """
    if n % 2:
        raise ValueError(f"the state size must be even to pair conjugate modes, got {n}")
    a_normal, p, b = legs_normal_plus_low_rank(n)
    real = a_normal.diagonal().mean()  # -1/2
    skew = a_normal - torch.diag(a_normal.diagonal())
    # skew / i is Hermitian: its real eigenvalues mu give the imaginary parts, in +- pairs.
    imag, v = torch.linalg.eigh(skew.to(torch.complex128) * -1j)
    imag, v = imag[: n // 2], v[:, : n // 2]  # ascending: the negative half
    lam = real + 1j * imag
    v_adjoint = v.conj().T
    return lam, v_adjoint @ p.to(v.dtype), v_adjoint @ b.to(v.dtype), v


def s4d_diagonal(init: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D's diagonal initialisations (Gu, Gupta, Goel & Ré, 2022, "On the Parameterization and
    Initialization of Diagonal State Space Models"), n/2 modes with negative imaginary parts:

    - 'legs': the eigenvalues of LegS's normal part, B~ = V^* B (S4D-LegS);
    - 'inv':  A_k = -1/2 - i (n/pi) (n/(2k+1) - 1), B = 1 (S4D-Inv);
    - 'lin':  A_k = -1/2 - i pi k, B = 1 (S4D-Lin).

    Returns (A (n/2,), B (n/2,)) complex128.
    """
    k = torch.arange(n // 2, dtype=torch.float64)
    ones = torch.ones(n // 2, dtype=torch.complex128)
    if init == "legs":
        lam, _, b, _ = legs_diagonal_plus_low_rank(n)
        return lam, b
    if init == "inv":
        return -0.5 - 1j * (n / math.pi) * (n / (2 * k + 1) - 1), ones
    if init == "lin":
        return -0.5 - 1j * math.pi * k, ones
    raise ValueError(f"S4D init {init!r}; choose from legs, inv, lin")


def dss_skew_hippo(n_modes: int) -> torch.Tensor:
    """DSS's Lambda (Gupta, Gu & Berant, 2022): -1/2 plus the eigenvalues of the skew part of
    LegS of size 2 * n_modes with positive imaginary part, largest first. (n_modes,) complex128."""
    lam, _, _, _ = legs_diagonal_plus_low_rank(2 * n_modes)
    lam = lam.conj()
    return lam[lam.imag.argsort(descending=True)]


def s5_block_diagonal(state_size: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """S5's initialisation (Smith, Warrington & Linderman, 2023): HiPPO-N (LegS's normal part) of
    size state_size / blocks on each of `blocks` diagonal blocks, one mode of each conjugate pair.

    Returns Lambda (state_size/2,) and the block-diagonal eigenvectors V (state_size,
    state_size/2), complex128; S5 initialises B~ = V^* B and C~ = C V from real B and C.
    """
    if state_size % blocks or (state_size // blocks) % 2:
        raise ValueError(f"state size {state_size} must split into {blocks} blocks of even size")
    lam, _, _, v = legs_diagonal_plus_low_rank(state_size // blocks)
    return lam.repeat(blocks), torch.block_diag(*[v] * blocks)
