"""Dropout with the Philox mask of reference.py as a compiled CPU kernel (csrc/dropout_cpu.cpp):
the mask drawn tile by tile and applied at once, vectorised, over torch's threads; nothing
stored for the backward but the seed (it draws the same mask again). Built on first use and
cached (models/ops/cpu_build.py); where it cannot be built, BackendUnavailable says why and the
op runs its `reference` form.

float32 and float64 run as they are; other dtypes run in float32 and come back in x's dtype.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import KERNEL_DTYPES, call, load_kernel
from models.ops.dropout.reference import keep_scale, keep_threshold

SOURCE = Path(__file__).resolve().parent / "csrc" / "dropout_cpu.cpp"


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("dropout_cpu", SOURCE).library


def _apply(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    y = torch.empty_like(x)
    scale = torch.tensor([keep_scale(p)], dtype=x.dtype)
    call(kernel(), "dropout_apply", [x, scale, y], [x.numel(), seed, keep_threshold(p)])
    return y


class _CompiledDropout(torch.autograd.Function):
    """forward(x, p, seed) -> y for contiguous float32 / float64 x; the backward is the same
    mask and scale applied to the gradient."""

    @staticmethod
    def forward(ctx, x, p, seed):
        ctx.p, ctx.seed = p, seed
        return _apply(x, p, seed)

    @staticmethod
    def backward(ctx, grad_y):
        return _apply(grad_y.contiguous(), ctx.p, ctx.seed), None, None


def dropout_cpu(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """Dropout by the compiled CPU kernel; arguments as models.ops.dropout.dropout. Raises
    BackendUnavailable when the kernel cannot be built here."""
    kernel()  # builds, or says why it cannot, before any tensor work
    if x.device.type != "cpu":
        raise ValueError("dropout_cpu takes CPU tensors")
    keep_threshold(p)  # refuses a p outside [0, 1]
    if not 0 <= seed < 2**63:
        raise ValueError(f"dropout seed must be in [0, 2^63), got {seed}")
    compute = x.dtype if x.dtype in KERNEL_DTYPES else torch.float32
    with torch.autocast(device_type="cpu", enabled=False):
        y = _CompiledDropout.apply(x.to(compute).contiguous(), float(p), int(seed))
    return y.to(x.dtype)
