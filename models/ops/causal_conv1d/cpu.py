"""Mamba's causal depthwise convolution and SiLU as a compiled CPU kernel
(csrc/causal_conv1d_cpu.cpp): channels-last, vectorised over channels, forward and backward, the
pre-activation recomputed in the backward rather than stored. Built on first use and cached
(models/ops/cpu_build.py); where it cannot be built, BackendUnavailable says why and the op runs
its `reference` form.

Why: nn.Conv1d on (b, c, l) needs two transposed copies per call, and its depthwise backward ran
~5 ns per multiply-add here (68 ms per Mamba-2 layer call at b 64, l 200, c 320), with SiLU's
backward (~10 ns per element) beside it: ~20% of a Mamba-2 `mini` step at one thread. The kernel
holds a task's taps and windows in registers, so widths above MAX_WIDTH are refused.

float32 and float64 run as they are; other dtypes run in float32 and come back in x's dtype.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.causal_conv1d.reference import check_activation
from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel

SOURCE = Path(__file__).resolve().parent / "csrc" / "causal_conv1d_cpu.cpp"
MAX_WIDTH = 64  # kMaxWidth of the kernel


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("causal_conv1d_cpu", SOURCE).library


class _CompiledCausalConv1d(torch.autograd.Function):
    """forward(x (B, L, C), wT (K, C), bias (C), silu, keep (B, L) bool or None) -> y (B, L, C),
    zero where keep is False; contiguous, one dtype."""

    @staticmethod
    def forward(ctx, x, wT, bias, silu, keep):
        batch, length, channels = x.shape
        y = torch.empty_like(x)
        sizes = [batch, length, channels, wT.shape[0], int(silu)]
        call(kernel(), "causal_conv1d_forward", [x, wT, bias, keep, y], sizes)
        ctx.save_for_backward(x, wT, bias, keep)
        ctx.silu = silu
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, wT, bias, keep = ctx.saved_tensors
        batch, length, channels = x.shape
        width = wT.shape[0]
        grad_x = torch.empty_like(x)
        # Per batch row partials, summed here: the same result at any number of threads.
        grad_wT = x.new_empty(batch, width, channels)
        grad_bias = x.new_empty(batch, channels)
        call(
            kernel(),
            "causal_conv1d_backward",
            [x, wT, bias, keep, grad_y.contiguous(), grad_x, grad_wT, grad_bias],
            [batch, length, channels, width, int(ctx.silu)],
        )
        return grad_x, grad_wT.sum(0), grad_bias.sum(0), None, None


def causal_conv1d_cpu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The op by the compiled CPU kernel; arguments as models.ops.causal_conv1d.causal_conv1d.
    Raises BackendUnavailable when the kernel cannot be built here."""
    kernel()  # builds, or says why it cannot, before any tensor work
    check_activation(activation)
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[0] != x.shape[2]:
        raise ValueError(
            f"causal_conv1d: x (B, L, C), weight (C, K); got {tuple(x.shape)}, {tuple(weight.shape)}"
        )
    if weight.shape[1] > MAX_WIDTH:
        raise ValueError(
            f"causal_conv1d_cpu: kernel width {weight.shape[1]} > {MAX_WIDTH} (the kernel's "
            "registers); kernels.per_op={causal_conv1d: reference} takes any width"
        )
    if bias is not None and tuple(bias.shape) != (x.shape[2],):
        raise ValueError(f"causal_conv1d: bias is {tuple(bias.shape)}, not ({x.shape[2]},)")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"causal_conv1d: mask is {tuple(mask.shape)}, not {tuple(x.shape[:2])}")
    if any(t.device.type != "cpu" for t in (x, weight) + ((bias,) if bias is not None else ())):
        raise ValueError("causal_conv1d_cpu takes CPU tensors")
    dtype = torch.promote_types(x.dtype, weight.dtype)
    compute = dtype if dtype in KERNEL_DTYPES else torch.float32
    if bias is None:
        bias = torch.zeros(x.shape[2], dtype=compute)  # no gradient wanted: a constant
    with torch.autocast(device_type="cpu", enabled=False):
        y = _CompiledCausalConv1d.apply(
            x.to(compute).contiguous(),
            weight.to(compute).t().contiguous(),
            bias.to(compute).contiguous(),
            activation == "silu",
            None if mask is None else mask.to(torch.bool).contiguous(),
        )
    return y.to(x.dtype)
