"""The compiled causal depthwise convolution (models/ops/causal_conv1d/cpu.py) beyond the shared
backend tests (test_backends.py: values and every gradient against nn.Conv1d's arithmetic, with
and without SiLU, lengths 1-257): every width (compiled in or read at run time, wider than the
sequence), no bias, the same result at any number of threads, bfloat16 inputs, shapes refused by
name, and the Mamba mixers' use of it against nn.Conv1d itself."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.ops.causal_conv1d import causal_conv1d
from tests.ops.compare import relative_rmse
from tests.ops.compiled import compiled_kernel


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("causal_conv1d_cpu", "causal_conv1d")


def _inputs(batch=2, length=50, channels=19, width=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, channels, generator=g, dtype=dtype).requires_grad_()
    w = torch.randn(channels, width, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(channels, generator=g, dtype=dtype).requires_grad_()
    return x, w, b


def _run(backend, x, w, b, activation="silu"):
    y = causal_conv1d(x, w, b, activation, backend=backend)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    leaves = [t for t in (x, w, b) if t is not None]
    return [y.detach(), *torch.autograd.grad((y * weights).sum(), leaves)]


def test_matches_nn_conv1d_as_mamba_called_it(kernel):
    """Against the mixers' former code: nn.Conv1d(padding=K-1) on (B, C, L), first L outputs."""
    x, w, b = _inputs()
    conv = torch.nn.Conv1d(19, 19, 4, groups=19, padding=3, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(w.unsqueeze(1))
        conv.bias.copy_(b)
    expected = F.silu(conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2))
    torch.testing.assert_close(causal_conv1d(x, w, b, "silu", backend="cpu"), expected)


def test_without_bias_and_with_another_width(kernel):
    x, w, _ = _inputs(width=2)
    for got, want in zip(_run("cpu", x, w, None), _run("reference", x, w, None)):
        assert relative_rmse(got, want) < 1e-12


@pytest.mark.parametrize("width", [1, 3, 5, 9])
@pytest.mark.parametrize("length", [2, 11])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_width_also_longer_than_the_sequence(kernel, width, length, dtype):
    """Widths 1-4 run with the width compiled in, wider ones read it at run time; a kernel wider
    than the sequence sees zeros before the first step. 19 channels leave a partial vector."""
    x, w, b = _inputs(length=length, width=width, dtype=dtype)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5  # float32 sums in another order
    for activation in ("silu", None):
        got, want = _run("cpu", x, w, b, activation), _run("reference", x, w, b, activation)
        for name, a, c in zip(("y", "dx", "dw", "dbias"), got, want):
            assert relative_rmse(a, c) < tolerance, (name, activation)


def test_a_kernel_wider_than_its_registers_is_refused_by_name(kernel):
    x, w, b = _inputs(length=80, width=65)
    with pytest.raises(ValueError, match="width 65 > 64"):
        causal_conv1d(x, w, b, "silu", backend="cpu")


def test_the_result_does_not_depend_on_the_number_of_threads(kernel):
    x, w, b = _inputs(batch=5, length=300, channels=64, dtype=torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run("cpu", x, w, b)
        torch.set_num_threads(2)
        two = _run("cpu", x, w, b)
    finally:
        torch.set_num_threads(before)
    for a, c in zip(one, two):
        assert torch.equal(a, c)


def test_bfloat16_comes_back_in_bfloat16(kernel):
    x, w, b = (t.detach().to(torch.bfloat16) for t in _inputs())
    y = causal_conv1d(x, w, b, "silu", backend="cpu")
    assert y.dtype == torch.bfloat16
    expected = causal_conv1d(x.float(), w.float(), b.float(), "silu", backend="reference")
    assert relative_rmse(y.float(), expected) < 1e-2


def test_bad_shapes_and_activation_are_refused_by_name(kernel):
    x, w, b = _inputs()
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d(x, w.t(), b, "silu", backend="cpu")
    with pytest.raises(ValueError, match="bias"):
        causal_conv1d(x, w, b[:-1], "silu", backend="cpu")
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d(x, w, b, "relu", backend="cpu")
