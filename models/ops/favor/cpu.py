"""FAVOR+ bidirectional attention (reference.py) as a compiled CPU kernel: the random features
computed one row at a time and used at once, forward and backward in C++ (csrc/favor_cpu.cpp),
vectorised over the m features, parallel over batch rows x heads with at::parallel_for
(torch.get_num_threads() threads). Built on first use and cached (models/ops/cpu_build.py); where
it cannot be built, BackendUnavailable says why and the op runs its `reference` form.

Why: at LRA sizes the PyTorch form's (b, h, l, m) features are tens of MB per tensor, each
written, read back and differentiated in a dozen elementwise passes; here they never leave L1/L2.

Memory: the forward keeps the state S' (b, h, e + 1, m), the output, the normalisers (b, h, l)
and the key stabilisers (b, h); the backward recomputes the features from q, k.

float32 and float64 run as they are; other dtypes run in float32, and y comes back in v's dtype.
The projection gets no gradient: one that needs it is refused with a ValueError (run the
`reference` form for that: kernels.per_op={favor: reference}).

Axis letters: b batch, h heads, l time, d query/key width, m features, e value width.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel

SOURCE = Path(__file__).resolve().parent / "csrc" / "favor_cpu.cpp"


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("favor_cpu", SOURCE).library


def _check(q, k, v, projection, mask) -> None:
    """The kernel reads raw arrays: every shape is checked here first."""
    if q.dim() != 4 or projection.dim() != 2:
        raise ValueError(f"favor_cpu: q (b, h, l, d), projection (m, d); got {q.shape}")
    batch, heads, length, width = q.shape
    expected = {
        "k": (k, (batch, heads, length, width)),
        "v": (v, (batch, heads, length, v.shape[-1])),
        "projection": (projection, (projection.shape[0], width)),
        "mask": (mask, (batch, length)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"favor_cpu: {name} is {tuple(tensor.shape)}, not {shape}")
    if projection.requires_grad:
        raise ValueError(
            "favor_cpu gives no gradient for the projection; the reference form does "
            "(kernels.per_op={favor: reference})"
        )


class _CompiledFavor(torch.autograd.Function):
    """forward(q, k, v, WT, mask, eps) -> y; contiguous tensors of one dtype (float32 or
    float64), WT the projection transposed (d, m), mask 1/0 in that dtype, eps a 1-element
    tensor."""

    @staticmethod
    def forward(ctx, q, k, v, WT, mask, eps):
        batch, heads, length, width = q.shape
        features, values = WT.shape[1], v.shape[-1]
        y = torch.empty_like(v)
        state = q.new_empty(batch, heads, values + 1, features)
        shift = q.new_empty(batch, heads)
        den = q.new_empty(batch, heads, length)
        call(
            kernel(),
            "favor_forward",
            [q, k, v, WT, mask, eps, y, state, shift, den],
            [batch, heads, length, width, features, values],
        )
        ctx.save_for_backward(q, k, v, WT, mask, eps, y, state, shift, den)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        q, k, v, WT, mask, eps, y, state, shift, den = ctx.saved_tensors
        batch, heads, length, width = q.shape
        features, values = WT.shape[1], v.shape[-1]
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        call(
            kernel(),
            "favor_backward",
            [q, k, v, WT, mask, eps, y, state, shift, den, grad_y.contiguous()]
            + [grad_q, grad_k, grad_v],
            [batch, heads, length, width, features, values],
        )
        needs = ctx.needs_input_grad
        return (
            grad_q if needs[0] else None,
            grad_k if needs[1] else None,
            grad_v if needs[2] else None,
            None,
            None,
            None,
        )


def favor_attention_cpu(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """FAVOR+ by the compiled CPU kernel; shapes as models.ops.favor.favor_attention. Raises
    BackendUnavailable when the kernel cannot be built here."""
    kernel()  # builds, or says why it cannot, before any tensor work
    _check(q, k, v, projection, mask)
    tensors = (q, k, v, projection)
    if any(t.device.type != "cpu" for t in (*tensors, mask)):
        raise ValueError("favor_cpu takes CPU tensors")
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    compute = dtype if dtype in KERNEL_DTYPES else torch.float32

    def ready(tensor):
        return tensor.to(compute).contiguous()

    with torch.autocast(device_type="cpu", enabled=False):
        y = _CompiledFavor.apply(
            ready(q),
            ready(k),
            ready(v),
            ready(projection.detach().t()),
            ready(mask),
            torch.tensor([eps], dtype=compute),
        )
    return y.to(v.dtype)
