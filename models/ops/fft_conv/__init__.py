"""Long convolution along time, per channel, causal or bidirectional: the op of the convolutional
SSMs (S4, S4D, DSS), H3, Hyena and Mega's EMA.

Backends: `reference` (the direct O(L^2) sum, the oracle), `fft` (zero-padded FFT, O(L log L)).
No Triton form yet, though this op takes far more of an S4D step than the Vandermonde kernel
(which has one): cuFFT already runs each FFT near memory bandwidth, and a fused Triton FFT
convolution (DFTs as matrix products, FlashFFTConv-style) only pays in reduced precision and
holds a row of 2L complex numbers per program, which stops fitting past L ~ 4K in float32.
README, "Kernels", gives the measurements.
"""

from __future__ import annotations

import torch

from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "fft_conv",
    [
        Backend("reference", "models.ops.fft_conv.reference:direct_conv"),
        Backend("fft", "models.ops.fft_conv.fft:fft_conv"),
    ],
    auto={"cuda": ("fft",), "cpu": ("fft",)},
)


def long_conv(
    u: torch.Tensor,
    k_forward: torch.Tensor,
    k_backward: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """y_t = sum_{s <= t} k_fwd[t - s] u_s (+ sum_{s > t} k_bwd[s - t - 1] u_s when k_backward is
    given). u: (b, h, l) real; kernels: (h, l) -> (b, h, l). backend: None = the run's settings."""
    return OP(u, k_forward, k_backward, backend=backend)
