"""The compiled CPU gated linear attention (models/ops/gated_linear_attention/cpu.py) beyond the
shared backend tests (test_backends.py): the RWKV-6 mixer with it against its reference form
(bidirectional, padded rows, threads), no initial state, inputs without gradients, bfloat16
inputs. (Its build and fallback are models/ops/cpu_build.py's, tested with the selective scan:
test_selective_scan_cpu.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.mixers.rwkv6 import RWKV6TimeMix
from models.ops import gated_linear_attention as gla_op
from models.ops.gated_linear_attention import gated_linear_attention
from tests.ops.compare import relative_rmse
from tests.ops.compiled import compiled_kernel


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("gla_cpu", "gated_linear_attention")


def inputs(length=45, dtype=torch.float64, grad=True):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    q, k, v = randn(2, 3, length, 8), randn(2, 3, length, 8), randn(2, 3, length, 16)
    log_decay = F.logsigmoid(randn(2, 3, length, 8)) / 4
    bonus = randn(3, 8)
    return [t.requires_grad_(grad) for t in (q, k, v, log_decay, bonus)]


@pytest.mark.parametrize("threads", [1, 2])
def test_rwkv6_mixer_matches_its_reference(kernel, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        mixer = RWKV6TimeMix(32, n_heads=2, layer_index=1, n_layers=2).double()
        x = torch.randn(3, 41, 32, dtype=torch.float64, requires_grad=True)
        mask = torch.arange(41)[None, :] < torch.tensor([[41], [30], [3]])
        gla_op.OP.ran.clear()
        fast = mixer(x * mask[..., None], mask)
        (grad_fast,) = torch.autograd.grad((fast * mask[..., None]).square().sum(), x)
        slow = mixer.reference(x * mask[..., None], mask)
        (grad_slow,) = torch.autograd.grad((slow * mask[..., None]).square().sum(), x)
    finally:
        torch.set_num_threads(previous)
    real = mask[..., None]
    assert relative_rmse((fast * real).detach(), (slow * real).detach()) <= 1e-9
    assert relative_rmse(grad_fast, grad_slow) <= 1e-9
    assert gla_op.OP.ran.get("cpu") and gla_op.OP.ran.get("reference")


def test_without_initial_state_and_without_gradients(kernel):
    q, k, v, log_decay, bonus = inputs(grad=False)
    for decay, u in ((log_decay, bonus), (log_decay, None), (None, None)):
        o, last = gated_linear_attention(q, k, v, decay, u, backend="cpu")
        o_ref, last_ref = gated_linear_attention(q, k, v, decay, u, backend="reference")
        assert relative_rmse(o, o_ref) <= 1e-12 and relative_rmse(last, last_ref) <= 1e-12


def test_bfloat16_inputs_run_in_float32_and_come_back_in_bfloat16(kernel):
    q, k, v, log_decay, bonus = (t.bfloat16() for t in inputs(grad=False))
    o, last = gated_linear_attention(q, k, v, log_decay, bonus, backend="cpu")
    o_ref, _ = gated_linear_attention(*(t.float() for t in (q, k, v, log_decay, bonus)))
    assert o.dtype == last.dtype == torch.bfloat16
    assert relative_rmse(o.float(), o_ref) <= 1e-2
