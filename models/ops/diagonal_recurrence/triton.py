"""The complex diagonal recurrence x_t = lambda * x_{t-1} + v_t (reference.py) as one Triton scan,
used by both passes.

Grid: one program per (block of BLOCK_N modes, batch row). A program keeps its BLOCK_N states in
registers (real and imaginary parts in fp32) and walks time one step at a time, reading v_t and
writing x_t: one read and one write of every element, the least memory traffic the recurrence
allows, where the chunked PyTorch form writes a (T, T, n) power table and a (b, l, n) partial sum
besides. Modes never interact, so the programs are independent; the walk is latency-bound, as in
the selective scan, and its parallelism is b x ceil(n / BLOCK_N) programs.

Backward, in PyTorch's conjugate convention (grad of y = a b is grad_y conj(b)): the adjoint

    a_t = gx_t + conj(lambda) a_{t+1}        (forward-time recurrence; a_L = 0)

is the same recurrence run the other way with conj(lambda), so the same kernel computes it;
then dv = a, d h0 = conj(lambda) a_first and d lambda = sum_{b,t} a_t conj(x_{t-1}) (x_{-1} = h0,
or 0) are elementwise products and one sum, left to PyTorch. Nothing but x is stored.

Complex tensors travel as (re, im) pairs (torch.view_as_real) with any strides; every value is
upcast to fp32 in registers (fp64 stays fp64). Axis letters: b batch, l / t time, n modes.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_N = 32  # modes per program: one warp's lanes, the (re, im) parts in two registers each


@triton.jit
def _diagonal_scan_kernel(
    lam_ptr,
    v_ptr,
    h0_ptr,
    x_ptr,
    length,
    modes,
    stride_v_b,
    stride_v_l,
    stride_v_n,
    stride_x_b,
    stride_x_l,
    stride_x_n,
    stride_h0_b,
    stride_h0_n,
    HAS_H0: tl.constexpr,
    REVERSE: tl.constexpr,
    WIDE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    block = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    offs = block * BLOCK_N + tl.arange(0, BLOCK_N)
    inside = offs < modes
    acc_type = tl.float64 if WIDE else tl.float32
    lam_re = tl.load(lam_ptr + 2 * offs, mask=inside, other=0.0).to(acc_type)
    lam_im = tl.load(lam_ptr + 2 * offs + 1, mask=inside, other=0.0).to(acc_type)
    if HAS_H0:
        h0 = h0_ptr + row * stride_h0_b + offs * stride_h0_n
        x_re = tl.load(h0, mask=inside, other=0.0).to(acc_type)
        x_im = tl.load(h0 + 1, mask=inside, other=0.0).to(acc_type)
    else:
        x_re = tl.zeros([BLOCK_N], dtype=acc_type)
        x_im = tl.zeros([BLOCK_N], dtype=acc_type)
    v_row = v_ptr + row * stride_v_b + offs * stride_v_n
    x_row = x_ptr + row * stride_x_b + offs * stride_x_n
    for i in range(0, length):
        if REVERSE:
            t = length - 1 - i
        else:
            t = i
        v = v_row + t * stride_v_l
        v_re = tl.load(v, mask=inside, other=0.0).to(acc_type)
        v_im = tl.load(v + 1, mask=inside, other=0.0).to(acc_type)
        x_re, x_im = lam_re * x_re - lam_im * x_im + v_re, lam_re * x_im + lam_im * x_re + v_im
        x = x_row + t * stride_x_l
        tl.store(x, x_re.to(x_ptr.dtype.element_ty), mask=inside)
        tl.store(x + 1, x_im.to(x_ptr.dtype.element_ty), mask=inside)


def _scan(lam: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None, reverse: bool):
    """x (b, l, n) complex of v's dtype: the recurrence with the diagonal `lam` (n,) complex."""
    batch, length, modes = v.shape
    x = torch.empty_like(v, memory_format=torch.contiguous_format)
    if batch == 0 or length == 0 or modes == 0:
        return x
    # view_as_real refuses a lazily conjugated tensor (the conj bit): resolve it first.
    v_pairs, x_pairs = torch.view_as_real(v.resolve_conj()), torch.view_as_real(x)
    lam_pairs = torch.view_as_real(lam.to(v.dtype).resolve_conj().contiguous())
    h0_pairs = torch.view_as_real(h0.to(v.dtype).resolve_conj()) if h0 is not None else lam_pairs
    _diagonal_scan_kernel[(triton.cdiv(modes, BLOCK_N), batch)](
        lam_pairs,
        v_pairs,
        h0_pairs,
        x_pairs,
        length,
        modes,
        *v_pairs.stride()[:3],
        *x_pairs.stride()[:3],
        *(h0_pairs.stride()[:2] if h0 is not None else (0, 0)),
        HAS_H0=h0 is not None,
        REVERSE=reverse,
        WIDE=v.dtype == torch.complex128,
        BLOCK_N=BLOCK_N,
        num_warps=1,
    )
    return x


class _DiagonalRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lam, v, h0, reverse):
        x = _scan(lam, v, h0, reverse)
        ctx.save_for_backward(lam, x, h0)
        ctx.reverse = reverse
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x):
        lam, x, h0 = ctx.saved_tensors
        reverse = ctx.reverse
        lam_conj = lam.conj().resolve_conj()
        adjoint = _scan(lam_conj, grad_x.to(x.dtype), None, not reverse)
        # The state each step multiplied by lambda: x_{t-1} (x_{t+1} in reverse), h0 at the edge.
        edge = torch.zeros_like(x[:, :1]) if h0 is None else h0[:, None].to(x.dtype)
        if reverse:
            previous, first = torch.cat([x[:, 1:], edge], dim=1), adjoint[:, -1]
        else:
            previous, first = torch.cat([edge, x[:, :-1]], dim=1), adjoint[:, 0]
        grad_lam = (adjoint * previous.conj()).sum(dim=(0, 1))
        grad_h0 = None
        if h0 is not None and ctx.needs_input_grad[2]:
            grad_h0 = (lam_conj * first).to(h0.dtype)
        return grad_lam.to(lam.dtype), adjoint, grad_h0, None


def diagonal_recurrence_triton(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """Arguments and result as `diagonal_recurrence_reference`: log_lambda (n,) complex, v
    (b, l, n) complex, h0 (b, n) complex or None -> x (b, l, n). Gradients for all three;
    lambda = exp(log_lambda) is taken by PyTorch, so its gradient reaches log_lambda by autograd."""
    return _DiagonalRecurrence.apply(torch.exp(log_lambda), v, h0, reverse)
