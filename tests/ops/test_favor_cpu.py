"""The compiled CPU FAVOR+ (models/ops/favor/cpu.py) beyond the shared backend tests
(test_backends.py): the Performer mixer with it against its reference form (padded rows, the
LRA head and feature sizes, threads), a row without real keys, bfloat16 inputs, and a
projection that needs a gradient (refused). (Its build and fallback are
models/ops/cpu_build.py's, tested with the selective scan: test_selective_scan_cpu.py.)"""

from __future__ import annotations

import pytest
import torch

from models.mixers.performer import PerformerAttention
from models.ops import favor
from models.ops.favor import favor_attention
from tests.ops.compare import relative_rmse
from tests.ops.compiled import compiled_kernel

TINY = torch.finfo(torch.float32).tiny


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("favor_cpu", "favor")


def inputs(batch=3, heads=2, length=37, width=16, features=64, values=16, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)

    def randn(*shape, scale=1.0):
        x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
        return x.to(dtype).requires_grad_()

    q = randn(batch, heads, length, width, scale=0.5)
    k = randn(batch, heads, length, width, scale=0.5)
    v = randn(batch, heads, length, values)
    projection = torch.randn(features, width, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, length // 2 :] = False
    mask[2, :] = False  # no real key at all: y = 0, and no NaN anywhere
    return q, k, v, projection, mask


def outputs_and_gradients(backend, q, k, v, projection, mask):
    y = favor_attention(q, k, v, projection, mask, TINY, backend=backend)
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    return [t.detach() for t in (y, *torch.autograd.grad((y * weights).sum(), (q, k, v)))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_the_reference_with_padding_and_a_row_without_keys(kernel, dtype):
    args = inputs(dtype=dtype)
    reference = outputs_and_gradients("reference", *inputs())
    tested = outputs_and_gradients("cpu", *args)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4
    for name, value, expected in zip(("y", "grad_q", "grad_k", "grad_v"), tested, reference):
        assert torch.isfinite(value).all(), name
        assert relative_rmse(value, expected) <= tolerance, name
    assert tested[0][2].abs().max() == 0  # the row without keys


@pytest.mark.parametrize("threads", [1, 2])
def test_performer_mixer_matches_its_reference(kernel, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        mixer = PerformerAttention(32, n_heads=2, n_features=48).double().eval()
        x = torch.randn(3, 29, 32, dtype=torch.float64, requires_grad=True)
        mask = torch.arange(29)[None, :] < torch.tensor([[29], [17], [5]])
        fast = mixer(x * mask[..., None], mask)
        (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
        slow = mixer.reference(x * mask[..., None], mask)
        (grad_slow,) = torch.autograd.grad(slow.square().sum(), x)
    finally:
        torch.set_num_threads(previous)
    # The mixer computes its features in float32 on every path.
    assert relative_rmse(fast.detach(), slow.detach()) <= 1e-5
    assert relative_rmse(grad_fast, grad_slow) <= 1e-5
    assert favor.OP.ran.get("cpu") and favor.OP.ran.get("reference")


def test_bfloat16_values_come_back_in_bfloat16(kernel):
    q, k, v, projection, mask = inputs(dtype=torch.float32)
    y = favor_attention(q, k, v.detach().bfloat16(), projection, mask, TINY, backend="cpu")
    expected = favor_attention(q, k, v.detach().bfloat16(), projection, mask, TINY)
    assert y.dtype == torch.bfloat16
    assert relative_rmse(y.float(), expected.float()) <= 1e-2


def test_a_projection_that_needs_a_gradient_is_refused(kernel):
    q, k, v, projection, mask = inputs()
    with pytest.raises(ValueError, match="no gradient for the projection"):
        favor_attention(q, k, v, projection.requires_grad_(), mask, TINY, backend="cpu")
