"""The selective scan (reference.py for the recurrence) as a compiled CPU kernel: forward and
backward in C++ (csrc/selective_scan_cpu.cpp), vectorised over channels, parallel over batch
rows x channel tiles with at::parallel_for (torch.get_num_threads() threads). Built on first use
and cached (models/ops/cpu_build.py); where it cannot be built, BackendUnavailable says why and
the op runs its `chunked` form.

Memory: the forward keeps one (b, d, n) state every min(chunk_size, 32) steps, and the backward
rebuilds each chunk's states from it; nothing of size (b, l, d, n) is stored. The kept states
weigh (b, l, d) x n / 32, twice u at n = 16: the cap keeps the backward's rebuilt chunk small
enough for a wide channel tile in L2 (at 128 steps the backward ran ~1.5x slower, measured).

float32 and float64 run as they are; other floating inputs (float16, bfloat16) run in float32
and the outputs come back in the inputs' promoted dtype.

Axis letters: b batch, l time, d channels, n state size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel, parts_per_row

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.cpp"
MAX_STEPS_BETWEEN_STATES = 32


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("selective_scan_cpu", SOURCE).library


def _check(u, delta, A, B, C, D, h0) -> None:
    """The kernel reads raw arrays: every shape is checked here first (dtype and layout are
    made uniform by the caller)."""
    if u.dim() != 3 or A.dim() != 2:
        raise ValueError(f"selective_scan_cpu: u (b, l, d) and A (d, n), got {u.shape}, {A.shape}")
    batch, length, channels = u.shape
    states = A.shape[1]
    expected = {
        "delta": (delta, (batch, length, channels)),
        "A": (A, (channels, states)),
        "B": (B, (batch, length, states)),
        "C": (C, (batch, length, states)),
        "D": (D, (channels,)),
        "initial_state": (h0, (batch, channels, states)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"selective_scan_cpu: {name} is {tuple(tensor.shape)}, not {shape}")


class _CompiledScan(torch.autograd.Function):
    """forward(u, delta, A, B, C, D or None, h0, steps) -> (y, last state); contiguous tensors
    of one dtype (float32 or float64), shapes as in `selective_scan_cpu`; steps between the
    states kept for the backward."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, h0, steps):
        batch, length, channels = u.shape
        states = A.shape[1]
        keep = any(ctx.needs_input_grad[:7])
        y, last_state = torch.empty_like(u), torch.empty_like(h0)
        n_chunks = -(-length // steps)
        kept = u.new_empty(batch, n_chunks, channels, states) if keep else None
        call(
            kernel(),
            "selective_scan_forward",
            [u, delta, A, B, C, D, h0, y, last_state, kept],
            [batch, length, channels, states, steps],
        )
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, kept)
            ctx.steps = steps
        return y, last_state

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        u, delta, A, B, C, D, kept = ctx.saved_tensors
        batch, length, channels = u.shape
        states = A.shape[1]
        # Channel groups per batch row (8-channel tiles at the least), each with its own partial
        # grad_B and grad_C.
        groups = parts_per_row(batch, -(-channels // 8))
        grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
        grad_A_rows = u.new_empty(batch, channels, states)
        grad_B_parts = u.new_zeros(groups, batch, length, states)
        grad_C_parts = u.new_zeros(groups, batch, length, states)
        grad_D_rows = None if D is None else u.new_empty(batch, channels)
        grad_h0 = torch.empty_like(grad_last)
        call(
            kernel(),
            "selective_scan_backward",
            [u, delta, A, B, C, D, kept, grad_y.contiguous(), grad_last.contiguous()]
            + [grad_u, grad_delta, grad_A_rows, grad_B_parts, grad_C_parts, grad_D_rows, grad_h0],
            [batch, length, channels, states, ctx.steps, groups],
        )
        grads = (
            grad_u,
            grad_delta,
            grad_A_rows.sum(0),
            grad_B_parts.sum(0) if groups > 1 else grad_B_parts[0],
            grad_C_parts.sum(0) if groups > 1 else grad_C_parts[0],
            None if D is None else grad_D_rows.sum(0),
            grad_h0,
        )
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None)


def selective_scan_cpu(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan by the compiled CPU kernel.

    u: (b, l, d) input.  delta: (b, l, d) positive steps (after softplus).  A: (d, n), negative.
    B, C: (b, l, n).  D: (d,) skip or None.  initial_state: (b, d, n) or None (zeros).
    chunk_size: time steps between the states kept for the backward (at most 32 here).
    Returns y: (b, l, d) and the final state (b, d, n), in the inputs' promoted dtype.
    Raises BackendUnavailable when the kernel cannot be built here.
    """
    kernel()  # builds, or says why it cannot, before any tensor work
    _check(u, delta, A, B, C, D, initial_state)
    if chunk_size < 1:
        raise ValueError(f"selective_scan_cpu: chunk_size must be >= 1, got {chunk_size}")
    tensors = [t for t in (u, delta, A, B, C, D, initial_state) if t is not None]
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError("selective_scan_cpu takes CPU tensors")
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    compute = dtype if dtype in KERNEL_DTYPES else torch.float32

    def ready(tensor):
        return tensor.to(compute).contiguous()

    if initial_state is None:
        initial_state = u.new_zeros(u.shape[0], u.shape[2], A.shape[-1], dtype=compute)
    y, last_state = _CompiledScan.apply(
        ready(u),
        ready(delta),
        ready(A),
        ready(B),
        ready(C),
        None if D is None else ready(D),
        ready(initial_state),
        min(int(chunk_size), MAX_STEPS_BETWEEN_STATES),
    )
    return y.to(dtype), last_state.to(dtype)
