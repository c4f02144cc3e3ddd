"""SSD (reference.py for the recurrence) as a compiled CPU kernel: the scalar-decay recurrence
one step at a time, forward and backward in C++ (csrc/ssd_cpu.cpp), vectorised over the state
size n, parallel over batch rows x heads with at::parallel_for (torch.get_num_threads()
threads). Built on first use and cached (models/ops/cpu_build.py); where it cannot be built,
BackendUnavailable says why and the op runs its `chunked` form.

Memory: the forward keeps the (b, h, p, n) state every min(chunk_size, 32) steps, and the
backward rebuilds each chunk's states from it; nothing of size (b, l, h, p, n) is stored.

float32 and float64 run as they are; other floating inputs (float16, bfloat16) run in float32
and the outputs come back in the inputs' promoted dtype.

Axis letters: b batch, l time, h heads, g groups of heads sharing B and C, p head width of x,
n state size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel, parts_per_row

SOURCE = Path(__file__).resolve().parent / "csrc" / "ssd_cpu.cpp"
MAX_STEPS_BETWEEN_STATES = 32


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("ssd_cpu", SOURCE).library


def _check(x, log_a, B, C, h0, dt=None, D=None) -> None:
    """The kernel reads raw arrays: every shape is checked here first."""
    if x.dim() != 4 or B.dim() != 4:
        raise ValueError(f"ssd_cpu: x (b, l, h, p) and B (b, l, g, n), got {x.shape}, {B.shape}")
    batch, length, heads, width = x.shape
    groups, states = B.shape[2], B.shape[3]
    if groups == 0 or heads % groups:
        raise ValueError(f"ssd_cpu: {heads} heads do not split into {groups} groups")
    expected = {
        "log_a": (log_a, (batch, length, heads)),
        "B": (B, (batch, length, groups, states)),
        "C": (C, (batch, length, groups, states)),
        "initial_state": (h0, (batch, heads, width, states)),
        "dt": (dt, (batch, length, heads)),
        "D": (D, (heads,)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"ssd_cpu: {name} is {tuple(tensor.shape)}, not {shape}")


class _CompiledSSD(torch.autograd.Function):
    """forward(x, log_a, B, C, h0, dt or None, D or None, steps) -> (y, last state); contiguous
    tensors of one dtype (float32 or float64), shapes as in `ssd_cpu`; steps between the states
    kept for the backward."""

    @staticmethod
    def forward(ctx, x, log_a, B, C, h0, dt, D, steps):
        batch, length, heads, width = x.shape
        groups, states = B.shape[2], B.shape[3]
        keep = any(ctx.needs_input_grad[:7])
        y, last_state = torch.empty_like(x), torch.empty_like(h0)
        n_chunks = -(-length // steps)
        kept = x.new_empty(batch, heads, n_chunks, width, states) if keep else None
        call(
            kernel(),
            "ssd_forward",
            [x, log_a, B, C, h0, dt, D, y, last_state, kept],
            [batch, length, heads, width, groups, states, steps],
        )
        if keep:
            ctx.save_for_backward(x, log_a, B, C, dt, D, kept)
            ctx.steps = steps
        return y, last_state

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        x, log_a, B, C, dt, D, kept = ctx.saved_tensors
        batch, length, heads, width = x.shape
        groups, states = B.shape[2], B.shape[3]
        # Parts of each group's heads, each with its own partial grad_B and grad_C.
        parts = parts_per_row(batch * groups, heads // groups)
        grad_x, grad_log_a = torch.empty_like(x), torch.empty_like(log_a)
        grad_B_parts = x.new_zeros(parts, batch, length, groups, states)
        grad_C_parts = x.new_zeros(parts, batch, length, groups, states)
        grad_h0 = torch.empty_like(grad_last)
        grad_dt = None if dt is None else torch.empty_like(dt)
        grad_D_rows = None if D is None else x.new_empty(batch, heads)
        call(
            kernel(),
            "ssd_backward",
            [x, log_a, B, C, dt, D, kept, grad_y.contiguous(), grad_last.contiguous()]
            + [grad_x, grad_log_a, grad_B_parts, grad_C_parts, grad_h0, grad_dt, grad_D_rows],
            [batch, length, heads, width, groups, states, ctx.steps, parts],
        )
        grads = (
            grad_x,
            grad_log_a,
            grad_B_parts.sum(0) if parts > 1 else grad_B_parts[0],
            grad_C_parts.sum(0) if parts > 1 else grad_C_parts[0],
            grad_h0,
            grad_dt,
            None if D is None else grad_D_rows.sum(0),
        )
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None)


def ssd_cpu(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    dt: torch.Tensor | None = None,
    D: torch.Tensor | None = None,
    chunk_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD by the compiled CPU kernel.

    x: (b, l, h, p).  log_a: (b, l, h), <= 0.  B, C: (b, l, g, n), shared by the h / g
    consecutive heads of each group.  initial_state: (b, h, p, n) or None (zeros).  dt:
    (b, l, h) input scale or None.  D: (h,) skip or None (both fused in the kernel).
    chunk_size: time steps between the states kept for the backward (at most 32 here).
    Returns y: (b, l, h, p) and the final state (b, h, p, n), in the inputs' promoted dtype.
    Raises BackendUnavailable when the kernel cannot be built here.
    """
    kernel()  # builds, or says why it cannot, before any tensor work
    _check(x, log_a, B, C, initial_state, dt, D)
    if chunk_size < 1:
        raise ValueError(f"ssd_cpu: chunk_size must be >= 1, got {chunk_size}")
    tensors = [t for t in (x, log_a, B, C, initial_state, dt, D) if t is not None]
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError("ssd_cpu takes CPU tensors")
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    compute = dtype if dtype in KERNEL_DTYPES else torch.float32

    def ready(tensor):
        return tensor.to(compute).contiguous()

    if initial_state is None:
        batch, _, heads, width = x.shape
        initial_state = x.new_zeros(batch, heads, width, B.shape[-1], dtype=compute)
    y, last_state = _CompiledSSD.apply(
        ready(x),
        ready(log_a),
        ready(B),
        ready(C),
        ready(initial_state),
        None if dt is None else ready(dt),
        None if D is None else ready(D),
        min(int(chunk_size), MAX_STEPS_BETWEEN_STATES),
    )
    return y.to(dtype), last_state.to(dtype)
