"""S4's Cauchy sums (cauchy.py, `bilinear_cauchy_sums`) as Triton kernels, forward and backward,
and the DPLR kernel built on them.

The PyTorch form materialises the resolvent r_n(omega_z) = 2 / (2 (1 - omega_z) - (1 + omega_z)
mu_n) as an (h, n, z) complex tensor, twice (for the mode and its conjugate), and autograd keeps
both: at S4's h 256, n 32 and L 16K (z = 8K frequencies) that is 0.5 GiB each in complex64. The
kernels form r in registers and write only the sums (the role of the Cauchy CUDA / KeOps kernels
of the S4 repository). Both halves of a conjugate pair come from one holomorphic product,

    C(omega)[r, h, z] = sum_n W[r, h, n] * 2 / (2 (1 - omega_z) - (1 + omega_z) mu[h, n]),

since sum_n conj(W) r_{conj mu}(omega) = conj(C(conj omega)): S = C(omega) + conj(C(conj omega)),
one launch over the frequencies and their conjugates.

Forward grid: one program per (SSM copy h, block of BLOCK_Z frequencies); it loops over the modes
in blocks of BLOCK_N, forms the (BLOCK_N, BLOCK_Z) resolvent tile once and applies it to every
weight row r at once, a (BLOCK_R, BLOCK_N, BLOCK_Z) product summed over n.

Backward, with G = dLoss/dC (PyTorch's conjugate convention; C is holomorphic in W and mu):

    dLoss/dW[r, h, n] = sum_z G[r, h, z] conj(rho[h, n, z])
    dLoss/dmu[h, n]   = sum_r conj(W[r, h, n]) sum_z G[r, h, z] conj(rho^2 (1 + omega_z) / 2)

One program per (h, block of modes) loops over the frequencies and keeps both sums for its
(BLOCK_R, BLOCK_N) tile: every output is owned by one program, no atomics. The frequencies are
constants (roots of unity): no gradient.

Complex tensors travel as (re, im) pairs (torch.view_as_real, contiguous); arithmetic is fp32
(fp64 for complex128). Axis letters: r weight rows, h SSM copies, n modes, z frequencies.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_N = 16
BLOCK_Z = 64


@triton.jit
def _resolvent(alpha_re, alpha_im, beta_re, beta_im, mu_re, mu_im):
    """rho = 2 / (alpha - beta mu) with alpha = 2 (1 - omega), beta = 1 + omega:
    (BLOCK_Z,) frequency rows broadcast against (BLOCK_N,) mode columns -> (BLOCK_N, BLOCK_Z)."""
    d_re = alpha_re[None, :] - (
        beta_re[None, :] * mu_re[:, None] - beta_im[None, :] * mu_im[:, None]
    )
    d_im = alpha_im[None, :] - (
        beta_re[None, :] * mu_im[:, None] + beta_im[None, :] * mu_re[:, None]
    )
    scale = 2.0 / (d_re * d_re + d_im * d_im)
    return d_re * scale, -d_im * scale


@triton.jit
def _load_frequencies(alpha_ptr, beta_ptr, z, inside_z, WIDE: tl.constexpr):
    acc_type = tl.float64 if WIDE else tl.float32
    alpha_re = tl.load(alpha_ptr + 2 * z, mask=inside_z, other=1.0).to(acc_type)
    alpha_im = tl.load(alpha_ptr + 2 * z + 1, mask=inside_z, other=0.0).to(acc_type)
    beta_re = tl.load(beta_ptr + 2 * z, mask=inside_z, other=0.0).to(acc_type)
    beta_im = tl.load(beta_ptr + 2 * z + 1, mask=inside_z, other=0.0).to(acc_type)
    return alpha_re, alpha_im, beta_re, beta_im


@triton.jit
def _load_modes(mu_ptr, h, n, inside_n, modes, WIDE: tl.constexpr):
    """mu[h, n] as (re, im). A padded mode reads mu = -1, whose resolvent is finite at every
    frequency (mu = 0 would divide by zero at omega = 1); its weight is 0."""
    acc_type = tl.float64 if WIDE else tl.float32
    mu = mu_ptr + 2 * (h * modes + n)
    mu_re = tl.load(mu, mask=inside_n, other=-1.0).to(acc_type)
    mu_im = tl.load(mu + 1, mask=inside_n, other=0.0).to(acc_type)
    return mu_re, mu_im


@triton.jit
def _cauchy_forward_kernel(
    w_ptr,  # (R, H, N, 2)
    mu_ptr,  # (H, N, 2)
    alpha_ptr,  # (Z, 2)
    beta_ptr,  # (Z, 2)
    out_ptr,  # (R, H, Z, 2)
    rows,
    copies,
    modes,
    frequencies,
    WIDE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_Z: tl.constexpr,
):
    h = tl.program_id(0).to(tl.int64)
    acc_type = tl.float64 if WIDE else tl.float32
    z = tl.program_id(1) * BLOCK_Z + tl.arange(0, BLOCK_Z)
    inside_z = z < frequencies
    alpha_re, alpha_im, beta_re, beta_im = _load_frequencies(alpha_ptr, beta_ptr, z, inside_z, WIDE)
    r = tl.arange(0, BLOCK_R)
    inside_r = r < rows
    acc_re = tl.zeros([BLOCK_R, BLOCK_Z], dtype=acc_type)
    acc_im = tl.zeros([BLOCK_R, BLOCK_Z], dtype=acc_type)
    for start in range(0, modes, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        inside_n = n < modes
        mu_re, mu_im = _load_modes(mu_ptr, h, n, inside_n, modes, WIDE)
        rho_re, rho_im = _resolvent(alpha_re, alpha_im, beta_re, beta_im, mu_re, mu_im)
        w = w_ptr + 2 * ((r[:, None] * copies + h) * modes + n[None, :])
        inside = inside_r[:, None] & inside_n[None, :]
        # Masked weights are 0, so padded modes and rows add nothing.
        w_re = tl.load(w, mask=inside, other=0.0).to(acc_type)[:, :, None]
        w_im = tl.load(w + 1, mask=inside, other=0.0).to(acc_type)[:, :, None]
        acc_re += tl.sum(w_re * rho_re[None, :, :] - w_im * rho_im[None, :, :], axis=1)
        acc_im += tl.sum(w_re * rho_im[None, :, :] + w_im * rho_re[None, :, :], axis=1)
    out = out_ptr + 2 * ((r[:, None] * copies + h) * frequencies + z[None, :])
    inside_out = inside_r[:, None] & inside_z[None, :]
    tl.store(out, acc_re.to(out_ptr.dtype.element_ty), mask=inside_out)
    tl.store(out + 1, acc_im.to(out_ptr.dtype.element_ty), mask=inside_out)


@triton.jit
def _cauchy_backward_kernel(
    grad_ptr,  # (R, H, Z, 2): dLoss/dC
    w_ptr,  # (R, H, N, 2)
    mu_ptr,  # (H, N, 2)
    alpha_ptr,
    beta_ptr,
    grad_w_ptr,  # (R, H, N, 2)
    grad_mu_ptr,  # (H, N, 2)
    rows,
    copies,
    modes,
    frequencies,
    WIDE: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_Z: tl.constexpr,
):
    h = tl.program_id(0).to(tl.int64)
    acc_type = tl.float64 if WIDE else tl.float32
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    inside_n = n < modes
    r = tl.arange(0, BLOCK_R)
    inside_r = r < rows
    mu_re, mu_im = _load_modes(mu_ptr, h, n, inside_n, modes, WIDE)
    dw_re = tl.zeros([BLOCK_R, BLOCK_N], dtype=acc_type)
    dw_im = tl.zeros([BLOCK_R, BLOCK_N], dtype=acc_type)
    p_re = tl.zeros([BLOCK_R, BLOCK_N], dtype=acc_type)
    p_im = tl.zeros([BLOCK_R, BLOCK_N], dtype=acc_type)
    for start in range(0, frequencies, BLOCK_Z):
        z = start + tl.arange(0, BLOCK_Z)
        inside_z = z < frequencies
        alpha_re, alpha_im, beta_re, beta_im = _load_frequencies(
            alpha_ptr, beta_ptr, z, inside_z, WIDE
        )
        rho_re, rho_im = _resolvent(alpha_re, alpha_im, beta_re, beta_im, mu_re, mu_im)
        # d rho / d mu = rho^2 (1 + omega) / 2 = rho^2 beta / 2.
        sq_re = rho_re * rho_re - rho_im * rho_im
        sq_im = 2.0 * rho_re * rho_im
        dr_re = 0.5 * (sq_re * beta_re[None, :] - sq_im * beta_im[None, :])
        dr_im = 0.5 * (sq_re * beta_im[None, :] + sq_im * beta_re[None, :])
        g = grad_ptr + 2 * ((r[:, None] * copies + h) * frequencies + z[None, :])
        inside_g = inside_r[:, None] & inside_z[None, :]
        g_re = tl.load(g, mask=inside_g, other=0.0).to(acc_type)[:, None, :]
        g_im = tl.load(g + 1, mask=inside_g, other=0.0).to(acc_type)[:, None, :]
        # G * conj(rho) and G * conj(d rho / d mu), summed over the frequencies.
        dw_re += tl.sum(g_re * rho_re[None, :, :] + g_im * rho_im[None, :, :], axis=2)
        dw_im += tl.sum(g_im * rho_re[None, :, :] - g_re * rho_im[None, :, :], axis=2)
        p_re += tl.sum(g_re * dr_re[None, :, :] + g_im * dr_im[None, :, :], axis=2)
        p_im += tl.sum(g_im * dr_re[None, :, :] - g_re * dr_im[None, :, :], axis=2)
    inside = inside_r[:, None] & inside_n[None, :]
    w = w_ptr + 2 * ((r[:, None] * copies + h) * modes + n[None, :])
    w_re = tl.load(w, mask=inside, other=0.0).to(acc_type)
    w_im = tl.load(w + 1, mask=inside, other=0.0).to(acc_type)
    grad_w = grad_w_ptr + 2 * ((r[:, None] * copies + h) * modes + n[None, :])
    tl.store(grad_w, dw_re.to(grad_w_ptr.dtype.element_ty), mask=inside)
    tl.store(grad_w + 1, dw_im.to(grad_w_ptr.dtype.element_ty), mask=inside)
    # dLoss/dmu = sum_r conj(W) P.
    grad_mu_re = tl.sum(w_re * p_re + w_im * p_im, axis=0)
    grad_mu_im = tl.sum(w_re * p_im - w_im * p_re, axis=0)
    grad_mu = grad_mu_ptr + 2 * (h * modes + n)
    tl.store(grad_mu, grad_mu_re.to(grad_mu_ptr.dtype.element_ty), mask=inside_n)
    tl.store(grad_mu + 1, grad_mu_im.to(grad_mu_ptr.dtype.element_ty), mask=inside_n)


def _pairs(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.view_as_real(x.detach().to(dtype).resolve_conj().contiguous())


class _Cauchy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights, mu, omega):
        dtype = torch.promote_types(weights.dtype, mu.dtype)
        rows, copies, modes = weights.shape
        frequencies = omega.shape[0]
        alpha, beta = _pairs(2 * (1 - omega), dtype), _pairs(1 + omega, dtype)
        w, m = _pairs(weights, dtype), _pairs(mu, dtype)
        out = torch.zeros(rows, copies, frequencies, dtype=dtype, device=weights.device)
        ctx.save_for_backward(w, m, alpha, beta)
        ctx.dtypes = (weights.dtype, mu.dtype, dtype)
        if rows and copies and frequencies:
            _cauchy_forward_kernel[(copies, triton.cdiv(frequencies, BLOCK_Z))](
                w,
                m,
                alpha,
                beta,
                torch.view_as_real(out),
                rows,
                copies,
                modes,
                frequencies,
                WIDE=dtype == torch.complex128,
                BLOCK_R=triton.next_power_of_2(rows),
                BLOCK_N=BLOCK_N,
                BLOCK_Z=BLOCK_Z,
                num_warps=4,
            )
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        w, m, alpha, beta = ctx.saved_tensors
        weights_dtype, mu_dtype, dtype = ctx.dtypes
        rows, copies, modes, _ = w.shape
        frequencies = alpha.shape[0]
        grad_w = torch.zeros(rows, copies, modes, dtype=dtype, device=w.device)
        grad_mu = torch.zeros(copies, modes, dtype=dtype, device=w.device)
        if rows and copies and modes:
            _cauchy_backward_kernel[(copies, triton.cdiv(modes, BLOCK_N))](
                _pairs(grad, dtype),
                w,
                m,
                alpha,
                beta,
                torch.view_as_real(grad_w),
                torch.view_as_real(grad_mu),
                rows,
                copies,
                modes,
                frequencies,
                WIDE=dtype == torch.complex128,
                BLOCK_R=triton.next_power_of_2(rows),
                BLOCK_N=BLOCK_N,
                BLOCK_Z=BLOCK_Z,
                num_warps=4,
            )
        return grad_w.to(weights_dtype), grad_mu.to(mu_dtype), None


def cauchy_triton(weights: torch.Tensor, mu: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """sum_n W[..., h, n] * 2 / (2 (1 - omega_z) - (1 + omega_z) mu[h, n]).

    weights: (..., h, n) complex, mu: (h, n) complex, omega: (z,) complex constants (no
    gradient) -> (..., h, z), in the wider complex dtype of weights and mu."""
    lead = weights.shape[:-2]
    flat = weights.reshape(-1, *weights.shape[-2:])
    return _Cauchy.apply(flat, mu, omega.detach()).reshape(*lead, *mu.shape[:-1], -1)


def bilinear_cauchy_sums_triton(
    weights: torch.Tensor, dt_lambda: torch.Tensor, omega: torch.Tensor
) -> torch.Tensor:
    """cauchy.py's `bilinear_cauchy_sums` (the mode and its conjugate) by the kernels: one
    launch at omega and conj(omega), S = C(omega) + conj(C(conj omega)). Shapes as there."""
    count = omega.shape[0]
    both = cauchy_triton(weights, dt_lambda, torch.cat([omega, omega.conj()]))
    return both[..., :count] + both[..., count:].conj()


def dplr_kernel_triton(dt, lam, p, b, c_tilde, length):
    """cauchy.py's `dplr_bilinear_kernel` with its Cauchy sums by the Triton kernels. Arguments
    and result as there: dt (h,), lam, p, b (h, n) complex, c_tilde (c, h, n) complex ->
    K (c, h, length) real."""
    from models.ops.dplr_kernel.cauchy import dplr_bilinear_kernel

    return dplr_bilinear_kernel(
        dt, lam, p, b, c_tilde, length, cauchy_sums=bilinear_cauchy_sums_triton
    )
