"""Model FLOPs of a training step, the device's peak FLOP/s, and model FLOPs utilisation (MFU),
computed here and nowhere else.

A step's FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode`, which has formulas for
matrix products, convolutions and the fused attention kernels (we add the CPU one it lacks). It
has none for FFTs, scans (cumsum, ...), element-wise work, or kernels launched outside torch's
dispatcher (a Triton kernel inside an autograd.Function is invisible to it). A count is therefore
a lower bound, and so are the FLOP/s and MFU derived from it; `uncounted` names the heavy ops
that ran without a formula, so a reader can tell where the bound is loose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import (
    FlopCounterMode,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

aten = torch.ops.aten


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(
    grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# torch counts the CUDA attention kernels but not the CPU flash kernel that
# scaled_dot_product_attention runs on CPU; without these the Transformer would count ~0 FLOPs
# for attention on CPU.
EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}

# Ops that do real arithmetic work per element of a sequence but have no FLOP formula.
_HEAVY_UNCOUNTED = re.compile(r"fft|cumsum|cumprod|logcumsumexp|cummax|cummin|scan")


class _UncountedOps(TorchDispatchMode):
    """Records the ops that ran without a FLOP formula and are heavy (FFTs, scans) or custom
    (a namespace other than aten/prims/profiler, e.g. a kernel registered with torch.library)."""

    def __init__(self, registry: dict) -> None:
        super().__init__()
        self.registry = registry
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func._overloadpacket
        if packet not in self.registry:
            namespace = func.namespace
            name = func.name()
            if namespace not in ("aten", "prims", "profiler") or _HEAVY_UNCOUNTED.search(name):
                self.seen.add(name)
        return func(*args, **(kwargs or {}))


def count_flops(step: Callable[[], object]) -> tuple[int, list[str]]:
    """(FLOPs counted while `step()` runs, sorted names of heavy ops that were not counted).

    A multiply-add counts as 2 FLOPs. Run one full training step (forward, backward, optimizer)
    inside `step`: the backward pass is counted too.
    """
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with counter:
        with _UncountedOps(counter.flop_registry) as uncounted:
            step()
    return int(counter.get_total_flops()), sorted(uncounted.seen)


def matmul_peak_flops(
    device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10
) -> float:
    """The best FLOP/s of a (size x size) @ (size x size) product on `device` in `dtype`: the
    denominator of MFU, measured on the machine at hand rather than taken from a data sheet."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):  # warm-up: thread pools, cuBLAS handles and heuristics
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - tic)
    return 2.0 * size**3 / best


def mfu(
    flops_per_step: float | None, steps_per_second: float | None, peak_flops: float | None
) -> tuple[float | None, float | None]:
    """(achieved FLOP/s, model FLOPs utilisation as a fraction of the peak). None where an input
    is unknown. Both are lower bounds when the FLOP count is (see the module docstring)."""
    if not flops_per_step or not steps_per_second:
        return None, None
    achieved = flops_per_step * steps_per_second
    return achieved, (achieved / peak_flops if peak_flops else None)
