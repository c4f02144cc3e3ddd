"""Long convolution: the reference is the convolution sum written term by term, and the FFT form
equals it. (Every backend against the reference: test_backends.py.)"""

import pytest
import torch

from models.ops.fft_conv import long_conv

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


@pytest.mark.parametrize("length", [16, 17])
def test_fft_conv_equals_the_convolution_sums(length):
    u = torch.randn(2, 3, length, dtype=torch.float64)
    k_fwd, k_bwd = torch.randn(2, 3, length, dtype=torch.float64)
    y = torch.zeros_like(u)
    for t in range(length):  # the definition, term by term
        for s in range(length):
            y[..., t] += (k_fwd[:, t - s] if s <= t else k_bwd[:, s - t - 1]) * u[..., s]
    for backend in ("reference", "fft"):
        torch.testing.assert_close(long_conv(u, k_fwd, k_bwd, backend=backend), y, **TIGHT)
    causal = torch.zeros_like(u)
    for t in range(length):
        for s in range(t + 1):
            causal[..., t] += k_fwd[:, t - s] * u[..., s]
    for backend in ("reference", "fft"):
        torch.testing.assert_close(long_conv(u, k_fwd, backend=backend), causal, **TIGHT)
