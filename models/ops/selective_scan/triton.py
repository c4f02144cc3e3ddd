"""The selective scan (reference.py for the recurrence) as Triton kernels, forward and backward,
in the manner of Mamba's CUDA kernel: sequential in time, parallel over batch rows and channels.

Grid: one single-warp program per (block of BLOCK_D channels, batch row), in both passes. A
program keeps its state as an (N, BLOCK_D) fp32 tile in registers and walks time one step at a
time, loading u_t, delta_t (BLOCK_D contiguous channels) and B_t, C_t (N values, shared by all
channels of the row); the next step's inputs are loaded before the current step computes, so
their latency overlaps the arithmetic. The tile's lanes run along channels, so each lane holds
<= 8 of one channel's states and the sums over n take one or two shuffles (see `_tiling`);
channels never interact. The walk is latency-bound, not bandwidth-bound: its speed comes from
having enough warps resident, hence small channel blocks.

Stored by the forward: y, the final state, and the state entering each chunk of T =
`chunk_size` steps, (b, ceil(L / T), n, d) fp32: B L D N / T values, never the (b, l, d, n)
per-step states that autograd would keep. The backward also saves the inputs u, delta, A, B, C, D.

Recomputed by the backward, which walks the chunks in reverse: each chunk's per-step states,
forward from its stored entering state into a scratch of T x N x BLOCK_D fp32 per program in
global memory (written and read back by the same warp, so it stays in L1/L2; about B d T N fp32
in all, one chunk of states), then the adjoint recurrence backwards through the chunk
(lambda = dL/dh_t, starting from the final state's gradient):

    lambda_t = exp(delta_{t+1} A) lambda_{t+1} + gy_t C_t
    du_t = delta_t sum_n lambda_t B_t + D gy_t,   dB_t = sum_d lambda_t delta_t u_t,
    dC_t = sum_d gy_t h_t,   g = lambda_t h_{t-1} exp(delta_t A),
    ddelta_t = sum_n g A + u_t sum_n lambda_t B_t,   dA += g delta_t,   dD += gy_t u_t

and d(initial state) = exp(delta_0 A) lambda_0. The state is not run backwards (h_{t-1} from
h_t would divide by exp(delta A), which underflows), hence the scratch. Reductions go through
deterministic fp32 partial buffers summed in torch, not atomics: dA and dD per batch row,
(b, d, n) and (b, d); dB and dC, which every channel block of a row adds to, per channel block,
(ceil(d / BLOCK_D), b, l, n) each, as large as u in fp32 when N = BLOCK_D = 16.

Inputs of any float dtype and any strides are read in place and upcast in registers; every
accumulation is fp32. Padding needs nothing here: the mixers pass delta = 0 there, which leaves
the state unchanged.

Axis letters: b batch, l / t time, d channels, n state size, T chunk length.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _scan_forward_kernel(
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    h0_ptr,
    y_ptr,
    final_ptr,
    states_ptr,
    length,
    channels,
    state_size,
    stride_u_b,
    stride_u_l,
    stride_u_d,
    stride_delta_b,
    stride_delta_l,
    stride_delta_d,
    stride_A_d,
    stride_A_n,
    stride_B_b,
    stride_B_l,
    stride_B_n,
    stride_C_b,
    stride_C_l,
    stride_C_n,
    stride_D,
    stride_h0_b,
    stride_h0_d,
    stride_h0_n,
    CHUNK: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_D: tl.constexpr,
    HAS_H0: tl.constexpr,
    STORE_STATES: tl.constexpr,
):
    """y (b, l, d), final state (b, d, n) and, if STORE_STATES, the state entering each chunk
    (b, n_chunks, n, d) fp32; outputs contiguous. Tiles are (BLOCK_N, BLOCK_D)."""
    block = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    offs_d = block * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < channels
    mask_n = offs_n < state_size
    mask_nd = mask_n[:, None] & mask_d[None, :]
    A = tl.load(
        A_ptr + offs_n[:, None] * stride_A_n + offs_d[None, :] * stride_A_d, mask=mask_nd, other=0.0
    ).to(tl.float32)
    if HAS_D:
        skip = tl.load(D_ptr + offs_d * stride_D, mask=mask_d, other=0.0).to(tl.float32)
    else:
        skip = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_H0:
        h0_at = h0_ptr + row * stride_h0_b
        h0_at += offs_n[:, None] * stride_h0_n + offs_d[None, :] * stride_h0_d
        h = tl.load(h0_at, mask=mask_nd, other=0.0).to(tl.float32)
    else:
        h = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    # Step t's inputs are at these pointers + t * (the time stride).
    u_at = u_ptr + row * stride_u_b + offs_d * stride_u_d
    delta_at = delta_ptr + row * stride_delta_b + offs_d * stride_delta_d
    B_at = B_ptr + row * stride_B_b + offs_n * stride_B_n
    C_at = C_ptr + row * stride_C_b + offs_n * stride_C_n
    y_at = y_ptr + row * length * channels + offs_d
    n_chunks = tl.cdiv(length, CHUNK)
    states_at = states_ptr + row * n_chunks * state_size * channels
    states_at += offs_n[:, None] * channels + offs_d[None, :]
    for chunk in range(0, n_chunks):
        if STORE_STATES:
            tl.store(states_at + chunk * state_size * channels, h, mask=mask_nd)
        start = chunk * CHUNK
        end = tl.minimum(start + CHUNK, length)
        u = tl.load(u_at + start * stride_u_l, mask=mask_d, other=0.0).to(tl.float32)
        delta = tl.load(delta_at + start * stride_delta_l, mask=mask_d, other=0.0).to(tl.float32)
        b = tl.load(B_at + start * stride_B_l, mask=mask_n, other=0.0).to(tl.float32)
        c = tl.load(C_at + start * stride_C_l, mask=mask_n, other=0.0).to(tl.float32)
        for t in range(start, end):
            # Step t + 1's inputs, loaded while step t computes (zeros past the chunk).
            following = t + 1
            valid_d, valid_n = mask_d & (following < end), mask_n & (following < end)
            u_next = tl.load(u_at + following * stride_u_l, mask=valid_d, other=0.0)
            delta_next = tl.load(delta_at + following * stride_delta_l, mask=valid_d, other=0.0)
            b_next = tl.load(B_at + following * stride_B_l, mask=valid_n, other=0.0)
            c_next = tl.load(C_at + following * stride_C_l, mask=valid_n, other=0.0)
            h = tl.exp(A * delta[None, :]) * h + b[:, None] * (delta * u)[None, :]
            y = tl.sum(h * c[:, None], axis=0) + skip * u
            tl.store(y_at + t * channels, y.to(y_ptr.dtype.element_ty), mask=mask_d)
            u, delta = u_next.to(tl.float32), delta_next.to(tl.float32)
            b, c = b_next.to(tl.float32), c_next.to(tl.float32)
    final_at = final_ptr + row * channels * state_size
    final_at += offs_n[:, None] + offs_d[None, :] * state_size
    tl.store(final_at, h.to(final_ptr.dtype.element_ty), mask=mask_nd)


@triton.jit
def _scan_backward_kernel(
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    states_ptr,
    grad_y_ptr,
    grad_final_ptr,
    grad_u_ptr,
    grad_delta_ptr,
    grad_A_part_ptr,
    grad_B_part_ptr,
    grad_C_part_ptr,
    grad_D_part_ptr,
    grad_h0_ptr,
    scratch_ptr,
    batch,
    length,
    channels,
    state_size,
    stride_u_b,
    stride_u_l,
    stride_u_d,
    stride_delta_b,
    stride_delta_l,
    stride_delta_d,
    stride_A_d,
    stride_A_n,
    stride_B_b,
    stride_B_l,
    stride_B_n,
    stride_C_b,
    stride_C_l,
    stride_C_n,
    stride_D,
    stride_gy_b,
    stride_gy_l,
    stride_gy_d,
    stride_gf_b,
    stride_gf_d,
    stride_gf_n,
    CHUNK: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HAS_D: tl.constexpr,
    HAS_GRAD_FINAL: tl.constexpr,
):
    """Gradients of one (channel block, batch row): grad_u, grad_delta (b, l, d) and
    grad_h0 (b, d, n) directly; grad_A (b, d, n), grad_D (b, d) per row and grad_B, grad_C
    (n_blocks, b, l, n) per channel block, fp32 partial sums for the caller to reduce.
    Tiles are (BLOCK_N, BLOCK_D); states (b, n_chunks, n, d) from the forward."""
    block = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    offs_d = block * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < channels
    mask_n = offs_n < state_size
    mask_nd = mask_n[:, None] & mask_d[None, :]
    A = tl.load(
        A_ptr + offs_n[:, None] * stride_A_n + offs_d[None, :] * stride_A_d, mask=mask_nd, other=0.0
    ).to(tl.float32)
    if HAS_D:
        skip = tl.load(D_ptr + offs_d * stride_D, mask=mask_d, other=0.0).to(tl.float32)
    else:
        skip = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_GRAD_FINAL:
        gf_at = grad_final_ptr + row * stride_gf_b
        gf_at += offs_n[:, None] * stride_gf_n + offs_d[None, :] * stride_gf_d
        adjoint = tl.load(gf_at, mask=mask_nd, other=0.0).to(tl.float32)
    else:
        adjoint = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    grad_A = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    grad_D = tl.zeros((BLOCK_D,), dtype=tl.float32)
    # Step t's inputs are at these pointers + t * (the time stride).
    u_at = u_ptr + row * stride_u_b + offs_d * stride_u_d
    delta_at = delta_ptr + row * stride_delta_b + offs_d * stride_delta_d
    B_at = B_ptr + row * stride_B_b + offs_n * stride_B_n
    C_at = C_ptr + row * stride_C_b + offs_n * stride_C_n
    gy_at = grad_y_ptr + row * stride_gy_b + offs_d * stride_gy_d
    grad_u_at = grad_u_ptr + row * length * channels + offs_d  # contiguous (b, l, d)
    grad_delta_at = grad_delta_ptr + row * length * channels + offs_d
    part = (block * batch + row) * length * state_size + offs_n  # (n_blocks, b, l, n) partials
    grad_B_at, grad_C_at = grad_B_part_ptr + part, grad_C_part_ptr + part
    n_chunks = tl.cdiv(length, CHUNK)
    states_at = states_ptr + row * n_chunks * state_size * channels
    states_at += offs_n[:, None] * channels + offs_d[None, :]
    # The scratch is dense (padded lanes included) and private to this program: no masks.
    scratch = scratch_ptr + (row * n_blocks + block) * (CHUNK * BLOCK_N * BLOCK_D)
    scratch += tl.arange(0, BLOCK_N)[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]
    for reversed_chunk in range(0, n_chunks):
        chunk = n_chunks - 1 - reversed_chunk
        start = chunk * CHUNK
        end = tl.minimum(start + CHUNK, length)
        h = tl.load(states_at + chunk * state_size * channels, mask=mask_nd, other=0.0)
        h = h.to(tl.float32)
        # Recompute: the state entering every step of the chunk, into the scratch.
        u = tl.load(u_at + start * stride_u_l, mask=mask_d, other=0.0).to(tl.float32)
        delta = tl.load(delta_at + start * stride_delta_l, mask=mask_d, other=0.0).to(tl.float32)
        b = tl.load(B_at + start * stride_B_l, mask=mask_n, other=0.0).to(tl.float32)
        for t in range(start, end):
            # Step t + 1's inputs, loaded while step t computes (zeros past the chunk).
            following = t + 1
            valid_d, valid_n = mask_d & (following < end), mask_n & (following < end)
            u_next = tl.load(u_at + following * stride_u_l, mask=valid_d, other=0.0)
            delta_next = tl.load(delta_at + following * stride_delta_l, mask=valid_d, other=0.0)
            b_next = tl.load(B_at + following * stride_B_l, mask=valid_n, other=0.0)
            tl.store(scratch + (t - start) * (BLOCK_N * BLOCK_D), h)
            h = tl.exp(A * delta[None, :]) * h + b[:, None] * (delta * u)[None, :]
            u, delta, b = u_next.to(tl.float32), delta_next.to(tl.float32), b_next.to(tl.float32)
        # The scratch may be read back by other threads of this program than those that wrote it.
        tl.debug_barrier()
        # Adjoint: backwards through the chunk.
        last = end - 1
        u = tl.load(u_at + last * stride_u_l, mask=mask_d, other=0.0).to(tl.float32)
        delta = tl.load(delta_at + last * stride_delta_l, mask=mask_d, other=0.0).to(tl.float32)
        b = tl.load(B_at + last * stride_B_l, mask=mask_n, other=0.0).to(tl.float32)
        c = tl.load(C_at + last * stride_C_l, mask=mask_n, other=0.0).to(tl.float32)
        gy = tl.load(gy_at + last * stride_gy_l, mask=mask_d, other=0.0).to(tl.float32)
        for step in range(0, end - start):
            t = last - step
            # Step t - 1's inputs, loaded while step t computes (zeros before the chunk).
            following = t - 1
            valid_d, valid_n = mask_d & (following >= start), mask_n & (following >= start)
            u_next = tl.load(u_at + following * stride_u_l, mask=valid_d, other=0.0)
            delta_next = tl.load(delta_at + following * stride_delta_l, mask=valid_d, other=0.0)
            b_next = tl.load(B_at + following * stride_B_l, mask=valid_n, other=0.0)
            c_next = tl.load(C_at + following * stride_C_l, mask=valid_n, other=0.0)
            gy_next = tl.load(gy_at + following * stride_gy_l, mask=valid_d, other=0.0)
            h_prev = tl.load(scratch + (t - start) * (BLOCK_N * BLOCK_D))
            decay = tl.exp(A * delta[None, :])
            drive = delta * u
            h = decay * h_prev + b[:, None] * drive[None, :]
            adjoint += c[:, None] * gy[None, :]
            adjoint_b = tl.sum(adjoint * b[:, None], axis=0)
            grad_decay = adjoint * h_prev * decay  # dL/d(delta A), element-wise
            grad_u = delta * adjoint_b + skip * gy
            grad_delta = tl.sum(grad_decay * A, axis=0) + u * adjoint_b
            grad_A += grad_decay * delta[None, :]
            grad_D += gy * u
            grad_b = tl.sum(adjoint * drive[None, :], axis=1)
            grad_c = tl.sum(h * gy[None, :], axis=1)
            tl.store(grad_u_at + t * channels, grad_u.to(grad_u_ptr.dtype.element_ty), mask=mask_d)
            grad_delta = grad_delta.to(grad_delta_ptr.dtype.element_ty)
            tl.store(grad_delta_at + t * channels, grad_delta, mask=mask_d)
            tl.store(grad_B_at + t * state_size, grad_b, mask=mask_n)
            tl.store(grad_C_at + t * state_size, grad_c, mask=mask_n)
            adjoint = decay * adjoint
            u, delta = u_next.to(tl.float32), delta_next.to(tl.float32)
            b, c, gy = b_next.to(tl.float32), c_next.to(tl.float32), gy_next.to(tl.float32)
        # The next chunk's recompute overwrites what other threads may still be reading.
        tl.debug_barrier()
    per_row = row * channels * state_size + offs_n[:, None] + offs_d[None, :] * state_size
    tl.store(grad_h0_ptr + per_row, adjoint, mask=mask_nd)
    tl.store(grad_A_part_ptr + per_row, grad_A, mask=mask_nd)
    tl.store(grad_D_part_ptr + row * channels + offs_d, grad_D, mask=mask_d)


def _tiling(batch: int, channels: int, state_size: int) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_N) for programs of one warp. Triton lays a (BLOCK_N, BLOCK_D) tile's 32
    lanes along d first, so a warp gives each channel 32 / BLOCK_D lanes, each holding
    BLOCK_N * BLOCK_D / 32 of its states. At most 8 states per lane: with 16 (all of N = 16 in
    one thread) the backward spills on sm_90 (ptxas: 254 registers); fewer lanes per channel
    mean fewer shuffles in the sums over n, more lanes mean more warps where batch x channels
    is small, which the walk over time needs to hide its latency (~8 warps per H200 SM)."""
    block_n = triton.next_power_of_2(state_size)
    lanes = max(1, block_n // 8)  # lanes per channel
    while lanes < min(block_n // 2, 32) and batch * channels * lanes < 32 * 1024:
        lanes *= 2
    block_d = max(1, min(32 // lanes, triton.next_power_of_2(channels)))
    return block_d, block_n


def _check(u, delta, A, B, C, D, initial_state) -> None:
    """Shapes and devices as the reference expects them (a kernel would read out of bounds)."""
    batch, length, channels = u.shape
    state_size = A.shape[-1]
    expected = {
        "delta": (delta, (batch, length, channels)),
        "A": (A, (channels, state_size)),
        "B": (B, (batch, length, state_size)),
        "C": (C, (batch, length, state_size)),
        "D": (D, (channels,)),
        "initial_state": (initial_state, (batch, channels, state_size)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is None:
            continue
        if tuple(tensor.shape) != shape:
            given = f"u {tuple(u.shape)} and A {tuple(A.shape)}"
            raise ValueError(
                f"selective_scan_triton: {name} has shape {tuple(tensor.shape)}, "
                f"expected {shape} from {given}"
            )
        if tensor.device != u.device:
            raise ValueError(f"selective_scan_triton: {name} on {tensor.device}, u on {u.device}")


def _promoted(*tensors) -> torch.dtype:
    """The dtype torch's type promotion gives the non-None tensors."""
    present = [t for t in tensors if t is not None]
    dtype = present[0].dtype
    for tensor in present[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _forward(u, delta, A, B, C, D, initial_state, chunk_size: int, store_states: bool):
    """(y (b, l, d), final state (b, d, n), entering states (b, n_chunks, n, d) fp32 or None)."""
    batch, length, channels = u.shape
    state_size = A.shape[-1]
    # The reference's dtypes: D reaches y only.
    state_dtype = _promoted(u, delta, A, B, C, initial_state)
    y_dtype = _promoted(u, delta, A, B, C, initial_state, D)
    y = torch.empty(batch, length, channels, device=u.device, dtype=y_dtype)
    final = torch.empty(batch, channels, state_size, device=u.device, dtype=state_dtype)
    n_chunks = triton.cdiv(length, chunk_size)
    states = None
    if store_states:
        states = torch.empty(
            batch, n_chunks, state_size, channels, device=u.device, dtype=torch.float32
        )
    block_d, block_n = _tiling(batch, channels, state_size)
    grid = (triton.cdiv(channels, block_d), batch)
    skip = D if D is not None else u  # never read when HAS_D is False
    h0 = initial_state if initial_state is not None else final  # likewise
    _scan_forward_kernel[grid](
        u, delta, A, B, C, skip, h0, y, final, states if states is not None else final,
        length, channels, state_size,
        *u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(),
        skip.stride(0), *h0.stride(),
        CHUNK=chunk_size, BLOCK_D=block_d, BLOCK_N=block_n,
        HAS_D=D is not None, HAS_H0=initial_state is not None, STORE_STATES=store_states,
        num_warps=1,
    )  # fmt: skip
    return y, final, states


def _backward(u, delta, A, B, C, D, states, grad_y, grad_final, chunk_size: int):
    """(grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D or None, grad_h0 fp32)."""
    batch, length, channels = u.shape
    state_size = A.shape[-1]
    block_d, block_n = _tiling(batch, channels, state_size)
    n_blocks = triton.cdiv(channels, block_d)
    f32 = {"device": u.device, "dtype": torch.float32}
    grad_u = torch.empty(batch, length, channels, device=u.device, dtype=u.dtype)
    grad_delta = torch.empty(batch, length, channels, device=u.device, dtype=delta.dtype)
    grad_A_part = torch.empty(batch, channels, state_size, **f32)
    grad_B_part = torch.empty(n_blocks, batch, length, state_size, **f32)
    grad_C_part = torch.empty(n_blocks, batch, length, state_size, **f32)
    grad_D_part = torch.empty(batch, channels, **f32)
    grad_h0 = torch.empty(batch, channels, state_size, **f32)
    scratch = torch.empty(batch * n_blocks * chunk_size * block_d * block_n, **f32)
    skip = D if D is not None else u  # never read when HAS_D is False
    given_final = grad_final if grad_final is not None else grad_h0  # likewise
    _scan_backward_kernel[(n_blocks, batch)](
        u, delta, A, B, C, skip, states, grad_y, given_final,
        grad_u, grad_delta, grad_A_part, grad_B_part, grad_C_part, grad_D_part, grad_h0, scratch,
        batch, length, channels, state_size,
        *u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(), skip.stride(0),
        *grad_y.stride(), *given_final.stride(),
        CHUNK=chunk_size, BLOCK_D=block_d, BLOCK_N=block_n,
        HAS_D=D is not None, HAS_GRAD_FINAL=grad_final is not None,
        num_warps=1,
    )  # fmt: skip
    grad_A = grad_A_part.sum(0).to(A.dtype)
    grad_B = grad_B_part.sum(0).to(B.dtype)
    grad_C = grad_C_part.sum(0).to(C.dtype)
    grad_D = grad_D_part.sum(0).to(D.dtype) if D is not None else None
    return grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D, grad_h0


class _SelectiveScanFunction(torch.autograd.Function):
    """forward(u, delta, A, B, C, D, initial_state, chunk_size) -> (y, final state); shapes as
    in `selective_scan_triton`. Saves the inputs and the chunk-entering states only."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, initial_state, chunk_size):
        y, final, states = _forward(
            u, delta, A, B, C, D, initial_state, chunk_size, store_states=True
        )
        ctx.save_for_backward(u, delta, A, B, C, D, states)
        ctx.chunk_size = chunk_size
        ctx.h0_dtype = initial_state.dtype if initial_state is not None else None
        ctx.set_materialize_grads(False)
        return y, final

    @staticmethod
    def backward(ctx, grad_y, grad_final):
        u, delta, A, B, C, D, states = ctx.saved_tensors
        if grad_y is None:
            grad_y = torch.zeros_like(u)
        grads = _backward(u, delta, A, B, C, D, states, grad_y, grad_final, ctx.chunk_size)
        grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D, grad_h0 = grads
        grad_h0 = grad_h0.to(ctx.h0_dtype) if ctx.h0_dtype is not None else None
        wanted = ctx.needs_input_grad
        grads = (grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D, grad_h0)
        return (*(g if wanted[i] else None for i, g in enumerate(grads)), None)


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan as Triton kernels; the backward recomputes each chunk's states.

    u: (b, l, d) input.  delta: (b, l, d) positive steps (after softplus).  A: (d, n), negative.
    B, C: (b, l, n).  D: (d,) skip or None.  initial_state: (b, d, n) or None (zeros).
    chunk_size: steps between the stored states (the backward's scratch holds one chunk).
    Returns y: (b, l, d) and the final state (b, d, n), in the promoted dtype of the inputs.
    """
    _check(u, delta, A, B, C, D, initial_state)
    if chunk_size < 1:
        raise ValueError(f"selective_scan_triton: chunk_size={chunk_size}, must be >= 1")
    inputs = (u, delta, A, B, C, D, initial_state)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        return _SelectiveScanFunction.apply(*inputs, chunk_size)
    y, final, _ = _forward(*inputs, chunk_size, store_states=False)
    return y, final
