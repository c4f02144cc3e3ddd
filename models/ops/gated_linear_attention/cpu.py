"""Gated linear attention (reference.py for the recurrence) as a compiled CPU kernel: the
recurrence one step at a time, forward and backward in C++ (csrc/gla_cpu.cpp), vectorised over
the value width, parallel over batch rows x heads with at::parallel_for
(torch.get_num_threads() threads). Covers GLA, RWKV-6's WKV (with its bonus) and causal linear
attention (no decay). Built on first use and cached (models/ops/cpu_build.py); where it cannot be
built, BackendUnavailable says why and the op runs its `chunked` form.

Memory: the forward keeps the (b, h, k, v) state every MAX_STEPS_BETWEEN_STATES steps, and the
backward rebuilds each stretch's states from it; nothing of size (b, h, l, k, v) is stored.

float32 and float64 run as they are; other floating inputs run in float32 and the outputs come
back in the inputs' promoted dtype.

Axis letters: b batch, h heads, l time, k key width, v value width.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel

SOURCE = Path(__file__).resolve().parent / "csrc" / "gla_cpu.cpp"
MAX_STEPS_BETWEEN_STATES = 32


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("gla_cpu", SOURCE).library


def _check(q, k, v, log_decay, bonus, h0) -> None:
    """The kernel reads raw arrays: every shape is checked here first."""
    if q.dim() != 4 or v.dim() != 4:
        raise ValueError(f"gla_cpu: q (b, h, l, k) and v (b, h, l, v), got {q.shape}, {v.shape}")
    batch, heads, length, keys = q.shape
    values = v.shape[-1]
    expected = {
        "k": (k, (batch, heads, length, keys)),
        "v": (v, (batch, heads, length, values)),
        "log_decay": (log_decay, (batch, heads, length, keys)),
        "bonus": (bonus, (heads, keys)),
        "initial_state": (h0, (batch, heads, keys, values)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"gla_cpu: {name} is {tuple(tensor.shape)}, not {shape}")


class _CompiledGLA(torch.autograd.Function):
    """forward(q, k, v, log_decay, bonus, h0, steps) -> (o, last state); contiguous tensors of
    one dtype (float32 or float64), log_decay / bonus / h0 possibly None."""

    @staticmethod
    def forward(ctx, q, k, v, log_decay, bonus, h0, steps):
        batch, heads, length, keys = q.shape
        values = v.shape[-1]
        keep = any(ctx.needs_input_grad[:6])
        o = torch.empty_like(v)
        last_state = q.new_empty(batch, heads, keys, values)
        n_chunks = -(-length // steps)
        kept = q.new_empty(batch, heads, n_chunks, keys, values) if keep else None
        call(
            kernel(),
            "gla_forward",
            [q, k, v, log_decay, bonus, h0, o, last_state, kept],
            [batch, heads, length, keys, values, steps],
        )
        if keep:
            ctx.save_for_backward(q, k, v, log_decay, bonus, kept)
            ctx.steps, ctx.has_h0 = steps, h0 is not None
        return o, last_state

    @staticmethod
    def backward(ctx, grad_o, grad_last):
        q, k, v, log_decay, bonus, kept = ctx.saved_tensors
        batch, heads, length, keys = q.shape
        values = v.shape[-1]
        if grad_o is None:
            grad_o = torch.zeros_like(v)
        if grad_last is None:
            grad_last = q.new_zeros(batch, heads, keys, values)
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        grad_log_decay = torch.empty_like(log_decay) if log_decay is not None else None
        grad_bonus = q.new_empty(batch, heads, keys) if bonus is not None else None
        grad_h0 = q.new_empty(batch, heads, keys, values) if ctx.has_h0 else None
        call(
            kernel(),
            "gla_backward",
            [q, k, v, log_decay, bonus, kept, grad_o.contiguous(), grad_last.contiguous()]
            + [grad_q, grad_k, grad_v, grad_log_decay, grad_bonus, grad_h0],
            [batch, heads, length, keys, values, ctx.steps],
        )
        if grad_bonus is not None:
            grad_bonus = grad_bonus.sum(0)
        grads = (grad_q, grad_k, grad_v, grad_log_decay, grad_bonus, grad_h0)
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad)), None)


def gated_linear_attention_cpu(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gated linear attention by the compiled CPU kernel; arguments and results as
    models.ops.gated_linear_attention.gated_linear_attention (no chunk size: the recurrence runs
    step by step). Raises BackendUnavailable when the kernel cannot be built here."""
    kernel()  # builds, or says why it cannot, before any tensor work
    _check(q, k, v, log_decay, bonus, initial_state)
    tensors = [t for t in (q, k, v, log_decay, bonus, initial_state) if t is not None]
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError("gla_cpu takes CPU tensors")
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    compute = dtype if dtype in KERNEL_DTYPES else torch.float32

    def ready(tensor):
        return None if tensor is None else tensor.to(compute).contiguous()

    o, last_state = _CompiledGLA.apply(
        ready(q),
        ready(k),
        ready(v),
        ready(log_decay),
        ready(bonus),
        ready(initial_state),
        MAX_STEPS_BETWEEN_STATES,
    )
    return o.to(dtype), last_state.to(dtype)
