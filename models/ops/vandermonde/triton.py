"""The Vandermonde product of a diagonal state-space system in Triton, forward and backward:

    K[c, h, l] = sum_n C[c, h, n] exp(l * log_lambda[h, n] - shift[h, n])

(reference.py: the oracle; chunked.py: the PyTorch form). Complex tensors travel as (re, im)
pairs (torch.view_as_real) and every product is written out in real arithmetic.

One program owns one SSM copy h and a run of consecutive tiles of BLOCK_L lags. Writing
log_lambda = a + i b, each power is split into its size and its phase:

- size exp(l a - shift), one exponential per (mode, lag), never factored: with DSS's shift
  a (L - 1) for growing modes (a > 0) the exponent is <= 0 at every lag, so nothing overflows,
  and a strongly decaying mode (a << 0) underflows to 0 as its true value does. (Factoring it as
  exp(l0 a - shift) exp(j a), as the PyTorch form factors the whole power, overflows the second
  factor when a * BLOCK_L > 88 and then multiplies inf by 0.) In float32 the exponent is formed
  as (l a_high - shift) + l a_low, a_high being a's 8 leading bits, so that l a and the shift,
  nearly equal for growing modes, cancel without rounding.
- phase exp(i l b) = exp(i l0 b) exp(i j b) for l = l0 + j: a (modes, BLOCK_L) table of
  exp(i j b) made once per program, and one rotation per mode and tile. Unit-modulus products
  cannot overflow. Each angle l b is reduced modulo 2 pi before its cos / sin in extended
  precision (b split into 8 leading bits, whose product with any l < 2^16 is exact, and a
  remainder; 2 pi split into three parts, Cody-Waite): what is left is the rounding of
  l b_low (|b_low| < 2^-7 |b|), ~4e-6 rad at l b = 16K, where rounding l b to float32 first
  (as the PyTorch forms do) costs ~1e-3 rad.

Backward, with G = dLoss/dK (PyTorch's conjugate convention) and E = exp(l log_lambda - shift):

    P[c, h, n] = sum_l conj(E[h, n, l]) G[c, h, l]        = dLoss/dC
    Q[c, h, n] = sum_l l conj(E[h, n, l]) G[c, h, l]
    dLoss/dlog_lambda = sum_c conj(C) Q,   dLoss/dshift = -Re sum_c conj(C) P

One kernel computes P and Q (reductions over l, the same tiling as the forward, partial sums per
run of tiles added in PyTorch); the two sums over c are tiny and stay in PyTorch.

Axis letters: c output channels, h SSM copies (model width), n modes, l time.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


def _leading_bits(value: float, bits: int) -> float:
    """`value` cut to its `bits` leading binary digits (exactly representable in float32)."""
    mantissa, exponent = math.frexp(value)
    return math.ldexp(math.floor(mantissa * 2**bits), exponent - bits)


# 2 pi = TWO_PI_1 + TWO_PI_2 + TWO_PI_3, the first two with 8 significant bits, so that
# turns * TWO_PI_1 and turns * TWO_PI_2 are exact in float32 for |turns| < 2^16.
_TWO_PI_1 = _leading_bits(2 * math.pi, 8)
_TWO_PI_2 = _leading_bits(2 * math.pi - _TWO_PI_1, 8)
TWO_PI_1: tl.constexpr = tl.constexpr(_TWO_PI_1)
TWO_PI_2: tl.constexpr = tl.constexpr(_TWO_PI_2)
TWO_PI_3: tl.constexpr = tl.constexpr(2 * math.pi - _TWO_PI_1 - _TWO_PI_2)
INV_TWO_PI: tl.constexpr = tl.constexpr(1 / (2 * math.pi))

# Elements of one (modes x lags [x channels]) tile: what 4-8 warps hold in registers with the
# handful of such tiles each kernel keeps live.
TILE_ELEMENTS = 4096
PROGRAMS_PER_SM = 4  # enough programs in flight to hide latency, few enough to reuse the table


@triton.jit
def _leading_bits_8(x):
    """float32 x cut to its 8 leading binary digits: its product with a whole number < 2^16 is
    exact."""
    return (x.to(tl.int32, bitcast=True) & -65536).to(tl.float32, bitcast=True)


@triton.jit
def _rotation(position, frequency, EXTENDED: tl.constexpr):
    """(cos, sin) of position * frequency; position holds whole numbers. EXTENDED (float32):
    the angle is formed and reduced to about [-pi, pi] in extended precision (module docstring).
    """
    if EXTENDED:
        high = _leading_bits_8(frequency)
        angle = position * high  # exact
        turns = tl.floor(angle * INV_TWO_PI + 0.5)
        angle = angle - turns * TWO_PI_1
        angle = angle - turns * TWO_PI_2
        angle = angle - turns * TWO_PI_3
        angle = angle + position * (frequency - high)
    else:
        angle = position * frequency
    return tl.cos(angle), tl.sin(angle)


@triton.jit
def _powers(decay, frequency, shift, start, steps, step_cos, step_sin, valid, EXTENDED):
    """exp((start + j) (decay + i frequency) - shift) for the tile's lags, as (re, im) tiles
    (modes, BLOCK_L); 0 at lags past the end. steps: j as floats; step_cos / sin: the phase
    table of exp(i j frequency)."""
    start_cos, start_sin = _rotation(start.to(decay.dtype), frequency, EXTENDED)
    rotation_re = start_cos[:, None] * step_cos - start_sin[:, None] * step_sin
    rotation_im = start_cos[:, None] * step_sin + start_sin[:, None] * step_cos
    lags = (start + steps)[None, :]
    if EXTENDED:
        # l a - shift nearly cancels for growing modes (shift = a (L - 1)): form l a_high exactly
        # and subtract first, so the exponent carries no rounding error of l a ~ shift.
        high = _leading_bits_8(decay)
        exponent = (lags * high[:, None] - shift[:, None]) + lags * (decay - high)[:, None]
    else:
        exponent = decay[:, None] * lags - shift[:, None]
    exponent = tl.where(valid[None, :], exponent, float("-inf"))
    size = tl.exp(exponent)
    return size * rotation_re, size * rotation_im


@triton.jit
def _load_modes(log_lambda_ptr, shift_ptr, copy, modes, HAS_SHIFT, BLOCK_N):
    """(decay, frequency, shift, mode index, mode mask) of SSM copy `copy`; padded modes read
    0, so their powers are finite and their coefficients 0."""
    n = tl.arange(0, BLOCK_N)
    n_ok = n < modes
    offsets = copy * modes + n
    decay = tl.load(log_lambda_ptr + 2 * offsets, mask=n_ok, other=0.0)
    frequency = tl.load(log_lambda_ptr + 2 * offsets + 1, mask=n_ok, other=0.0)
    if HAS_SHIFT:
        shift = tl.load(shift_ptr + offsets, mask=n_ok, other=0.0)
    else:
        shift = tl.zeros_like(decay)
    return decay, frequency, shift, n, n_ok


@triton.jit
def _vandermonde_forward_kernel(
    coefficients_ptr,  # (c, h, n, 2)
    log_lambda_ptr,  # (h, n, 2)
    shift_ptr,  # (h, n), read only when HAS_SHIFT
    out_ptr,  # (c, h, L, 2)
    channels,
    copies,
    modes,
    length,
    tiles_per_program,
    HAS_SHIFT: tl.constexpr,
    EXTENDED: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    copy = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    decay, frequency, shift, n, n_ok = _load_modes(
        log_lambda_ptr, shift_ptr, copy, modes, HAS_SHIFT, BLOCK_N
    )
    j = tl.arange(0, BLOCK_L)
    steps = j.to(decay.dtype)
    step_cos, step_sin = _rotation(steps[None, :], frequency[:, None], EXTENDED)
    pair = tl.arange(0, 2)
    for t in range(tiles_per_program):
        start = (group * tiles_per_program + t) * BLOCK_L
        if start < length:
            valid = start + j < length
            power_re, power_im = _powers(
                decay, frequency, shift, start, steps, step_cos, step_sin, valid, EXTENDED
            )
            for channel in range(channels):
                row = channel * copies + copy
                c_re = tl.load(coefficients_ptr + 2 * (row * modes + n), mask=n_ok, other=0.0)
                c_im = tl.load(coefficients_ptr + 2 * (row * modes + n) + 1, mask=n_ok, other=0.0)
                k_re = tl.sum(c_re[:, None] * power_re - c_im[:, None] * power_im, axis=0)
                k_im = tl.sum(c_re[:, None] * power_im + c_im[:, None] * power_re, axis=0)
                # (re, im) side by side: one contiguous store of the tile's 2 * BLOCK_L numbers.
                offsets = 2 * (row * length + start + j)
                tl.store(
                    out_ptr + offsets[:, None] + pair[None, :],
                    tl.join(k_re, k_im),
                    mask=valid[:, None],
                )


@triton.jit
def _vandermonde_backward_kernel(
    grad_ptr,  # (c, h, L, 2): dLoss/dK
    log_lambda_ptr,  # (h, n, 2)
    shift_ptr,  # (h, n), read only when HAS_SHIFT
    p_ptr,  # (groups, c, h, n, 2): partial sums of P over each program's tiles
    q_ptr,  # (groups, c, h, n, 2): the same for Q
    channels,
    copies,
    modes,
    length,
    tiles_per_program,
    HAS_SHIFT: tl.constexpr,
    EXTENDED: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    copy = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    decay, frequency, shift, n, n_ok = _load_modes(
        log_lambda_ptr, shift_ptr, copy, modes, HAS_SHIFT, BLOCK_N
    )
    j = tl.arange(0, BLOCK_L)
    steps = j.to(decay.dtype)
    step_cos, step_sin = _rotation(steps[None, :], frequency[:, None], EXTENDED)
    c = tl.arange(0, BLOCK_C)
    c_ok = c < channels
    rows = c * copies + copy  # (BLOCK_C,)
    p_re = tl.zeros((BLOCK_C, BLOCK_N), dtype=decay.dtype)
    p_im = tl.zeros((BLOCK_C, BLOCK_N), dtype=decay.dtype)
    q_re = tl.zeros((BLOCK_C, BLOCK_N), dtype=decay.dtype)
    q_im = tl.zeros((BLOCK_C, BLOCK_N), dtype=decay.dtype)
    for t in range(tiles_per_program):
        start = (group * tiles_per_program + t) * BLOCK_L
        if start < length:
            valid = start + j < length
            power_re, power_im = _powers(
                decay, frequency, shift, start, steps, step_cos, step_sin, valid, EXTENDED
            )
            offsets = 2 * (rows[:, None] * length + start + j[None, :])  # (BLOCK_C, BLOCK_L)
            g_mask = c_ok[:, None] & valid[None, :]
            g_re = tl.load(grad_ptr + offsets, mask=g_mask, other=0.0)
            g_im = tl.load(grad_ptr + offsets + 1, mask=g_mask, other=0.0)
            lags = (start + steps)[None, :]
            e_re = power_re[None, :, :]  # (1, BLOCK_N, BLOCK_L)
            e_im = power_im[None, :, :]
            # conj(E) G, summed over the tile's lags, for every (channel, mode).
            term_re = e_re * g_re[:, None, :] + e_im * g_im[:, None, :]
            term_im = e_re * g_im[:, None, :] - e_im * g_re[:, None, :]
            p_re += tl.sum(term_re, axis=2)
            p_im += tl.sum(term_im, axis=2)
            q_re += tl.sum(term_re * lags[:, None, :], axis=2)
            q_im += tl.sum(term_im * lags[:, None, :], axis=2)
    out = 2 * ((group * channels + c[:, None]) * copies * modes + copy * modes + n[None, :])
    mask = c_ok[:, None] & n_ok[None, :]
    tl.store(p_ptr + out, p_re, mask=mask)
    tl.store(p_ptr + out + 1, p_im, mask=mask)
    tl.store(q_ptr + out, q_re, mask=mask)
    tl.store(q_ptr + out + 1, q_im, mask=mask)


def block_sizes(channels: int, modes: int, backward: bool) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_N, BLOCK_L): all modes of a copy in one tile (every mode's phase table
    is reused for every tile), as many lags as the tile budget leaves, 16..128. (Past 256 modes
    the tiles outgrow the budget: still correct, slower.)"""
    block_c = triton.next_power_of_2(channels) if backward else 1
    block_n = triton.next_power_of_2(max(modes, 1))
    block_l = max(16, min(128, TILE_ELEMENTS // (block_c * block_n)))
    return block_c, block_n, block_l


def tile_groups(copies: int, tiles: int, device: torch.device, programs: int | None):
    """(tiles per program, groups of tiles per copy): about `programs` programs in all (default
    PROGRAMS_PER_SM per multiprocessor on CUDA; on CPU, the interpreter, 8)."""
    if programs is None:
        if device.type == "cuda":
            sms = torch.cuda.get_device_properties(device).multi_processor_count
            programs = PROGRAMS_PER_SM * sms
        else:
            programs = 8
    groups = max(1, min(tiles, -(-programs // copies)))
    per_program = -(-tiles // groups)
    return per_program, -(-tiles // per_program)


def _num_warps(elements: int) -> int:
    return 4 if elements <= 2048 else 8


def _real_pairs(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.view_as_real(x.detach().to(dtype).resolve_conj().contiguous())


class _Vandermonde(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coefficients, log_lambda, length, shift, programs):
        complex_dtype = torch.promote_types(coefficients.dtype, log_lambda.dtype)
        real_dtype = torch.empty(0, dtype=complex_dtype).real.dtype
        channels, copies, modes = coefficients.shape
        device = coefficients.device
        out = torch.zeros(channels, copies, length, dtype=complex_dtype, device=device)
        log_lambda_pairs = _real_pairs(log_lambda, complex_dtype)
        shift_real = None if shift is None else shift.detach().to(real_dtype).contiguous()
        ctx.save_for_backward(coefficients, log_lambda, shift)
        ctx.settings = (length, programs, complex_dtype, real_dtype)
        if length == 0 or channels == 0 or copies == 0:
            return out
        _, block_n, block_l = block_sizes(channels, modes, backward=False)
        tiles = -(-length // block_l)
        per_program, groups = tile_groups(copies, tiles, device, programs)
        _vandermonde_forward_kernel[(copies, groups)](
            _real_pairs(coefficients, complex_dtype),
            log_lambda_pairs,
            log_lambda_pairs if shift_real is None else shift_real,
            torch.view_as_real(out),
            channels,
            copies,
            modes,
            length,
            per_program,
            HAS_SHIFT=shift is not None,
            EXTENDED=real_dtype == torch.float32,
            BLOCK_N=block_n,
            BLOCK_L=block_l,
            num_warps=_num_warps(block_n * block_l),
        )
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        coefficients, log_lambda, shift = ctx.saved_tensors
        length, programs, complex_dtype, real_dtype = ctx.settings
        channels, copies, modes = coefficients.shape
        device = coefficients.device
        p = torch.zeros(channels, copies, modes, dtype=complex_dtype, device=device)
        q = torch.zeros_like(p)
        if length > 0 and channels > 0 and copies > 0:
            block_c, block_n, block_l = block_sizes(channels, modes, backward=True)
            tiles = -(-length // block_l)
            per_program, groups = tile_groups(copies, tiles, device, programs)
            partial_p = torch.empty(
                groups, channels, copies, modes, 2, dtype=real_dtype, device=device
            )
            partial_q = torch.empty_like(partial_p)
            log_lambda_pairs = _real_pairs(log_lambda, complex_dtype)
            shift_real = None if shift is None else shift.detach().to(real_dtype).contiguous()
            _vandermonde_backward_kernel[(copies, groups)](
                _real_pairs(grad, complex_dtype),
                log_lambda_pairs,
                log_lambda_pairs if shift_real is None else shift_real,
                partial_p,
                partial_q,
                channels,
                copies,
                modes,
                length,
                per_program,
                HAS_SHIFT=shift is not None,
                EXTENDED=real_dtype == torch.float32,
                BLOCK_C=block_c,
                BLOCK_N=block_n,
                BLOCK_L=block_l,
                num_warps=_num_warps(block_c * block_n * block_l),
            )
            p = torch.view_as_complex(partial_p.sum(0))
            q = torch.view_as_complex(partial_q.sum(0))
        coefficients_conj = coefficients.detach().to(complex_dtype).conj()
        grad_coefficients = grad_log_lambda = grad_shift = None
        if ctx.needs_input_grad[0]:
            grad_coefficients = p.to(coefficients.dtype)
        if ctx.needs_input_grad[1]:
            grad_log_lambda = (coefficients_conj * q).sum(0).to(log_lambda.dtype)
        if shift is not None and ctx.needs_input_grad[3]:
            grad_shift = -(coefficients_conj * p).sum(0).real.to(shift.dtype)
        return grad_coefficients, grad_log_lambda, None, grad_shift, None


def vandermonde_triton(
    coefficients: torch.Tensor,
    log_lambda: torch.Tensor,
    length: int,
    shift: torch.Tensor | None = None,
    *,
    programs: int | None = None,
) -> torch.Tensor:
    """sum_n c_n exp(l * log_lambda_n - shift_n) for l = 0..length-1, by the Triton kernels
    (forward and backward; gradients for coefficients, log_lambda and shift).

    coefficients: (c, h, n) complex, log_lambda: (h, n) complex, shift: (h, n) real, complex or
    None -> (c, h, length) complex, in the wider of the two complex dtypes. A complex shift (DSS
    shifts by dt lambda (L - 1), phase included) has its imaginary part folded into the
    coefficients, exp(-i Im shift) C, by PyTorch (autograd included); the kernels take the real
    part. programs: about how many programs to launch (default: PROGRAMS_PER_SM per
    multiprocessor); tests set it to exercise several tiles per program.
    """
    if shift is not None and shift.is_complex():
        coefficients = coefficients * torch.exp(-1j * shift.imag)
        shift = shift.real
    return _Vandermonde.apply(coefficients, log_lambda, length, shift, programs)
