"""The fast forms of the LTI state-space mixers (FFT convolutions, Cauchy and Vandermonde kernels,
diagonal scans by FFT or chunks) equal their step-by-step recurrences, in float64 to 1e-9."""

import pytest
import torch

from models.mixers.dss import DSS
from models.mixers.h3 import H3
from models.mixers.hyena import Hyena
from models.mixers.lru import LRU
from models.mixers.s4 import S4
from models.mixers.s4d import S4D
from models.mixers.s5 import S5
from models.ssm.dss_kernel import DSSKernel

TIGHT = {"rtol": 1e-9, "atol": 1e-12}
D, L = 6, 19


def relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_dss_kernel_is_the_softmax_formula_also_for_growing_modes():
    kernel = DSSKernel(d_model=2, d_state=3, length=11, epsilon=0.0).double()
    with torch.no_grad():
        kernel.lam[1, 0] = 0.3  # a mode with Re(lambda) > 0, which the softmax still normalises
    lam = torch.view_as_complex(kernel.lam)
    dt = kernel.log_dt.exp()
    dt_lam = dt[:, :1] * lam.real + 1j * dt[:, 1:] * lam.imag
    p = dt_lam[..., None] * torch.arange(11, dtype=torch.float64)  # (h, n, l)
    softmax = p.exp() / p.exp().sum(-1, keepdim=True)
    w = torch.view_as_complex(kernel.w)
    expected = torch.einsum("chn,hnl->chl", w / lam, softmax).real
    torch.testing.assert_close(kernel.kernel(11), expected, **TIGHT)
    # The exponent shift of growing modes is part of the graph: the gradient is the exact one.
    (grad,) = torch.autograd.grad(kernel.kernel(11).sum(), kernel.lam)
    lam_var = kernel.lam.detach().clone().requires_grad_(True)
    lam_c = torch.view_as_complex(lam_var)
    p = (dt[:, :1] * lam_c.real + 1j * dt[:, 1:] * lam_c.imag)[..., None] * torch.arange(11)
    naive = torch.einsum(
        "chn,hnl->chl", w.detach() / lam_c, p.exp() / p.exp().sum(-1, keepdim=True)
    )
    (expected_grad,) = torch.autograd.grad(naive.real.sum(), lam_var)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


MIXERS = {
    "s4": lambda causal: S4(D, max_length=L, d_state=8, causal=causal),
    "s4d-legs": lambda causal: S4D(D, d_state=8, init="legs", causal=causal),
    "s4d-inv": lambda causal: S4D(D, d_state=8, init="inv", causal=causal),
    "s4d-lin": lambda causal: S4D(D, d_state=8, init="lin", causal=causal),
    "dss": lambda causal: DSS(D, max_length=L, d_state=4, causal=causal),
    "s5-fft": lambda causal: S5(D, d_state=8, blocks=2, causal=causal, scan="fft"),
    "s5-chunked": lambda causal: S5(D, d_state=8, blocks=2, causal=causal, scan="chunked", chunk=4),
    "lru-fft": lambda causal: LRU(D, d_state=6, r_min=0.5, causal=causal, scan="fft"),
    "lru-chunked": lambda causal: LRU(D, d_state=6, causal=causal, scan="chunked", chunk=8),
    "hyena": lambda causal: Hyena(D, max_length=L, causal=causal),
    "hyena-order3": lambda causal: Hyena(D, max_length=L, order=3, causal=causal),
    "h3": lambda causal: H3(D, d_state=8, causal=causal),
}


def padded_input(dtype=torch.float64):
    x = torch.randn(2, L, D, dtype=dtype)
    mask = torch.arange(L)[None, :] < torch.tensor([L, 12])[:, None]
    return x * mask[..., None], mask


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_fast_form_equals_step_by_step_recurrence_in_float64(name, causal):
    mixer = MIXERS[name](causal).double()
    x, mask = padded_input()
    torch.testing.assert_close(mixer(x, mask), mixer.reference(x, mask), **TIGHT)


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_float32_fast_form_is_close_to_the_float64_recurrence(name):
    mixer = MIXERS[name](False)
    x, mask = padded_input(torch.float32)
    fast = mixer(x, mask).double()
    exact = mixer.double().reference(x.double(), mask)
    assert relative_error(fast, exact) < 1e-4


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_bidirectional_form_sees_later_inputs_and_causal_form_does_not(name):
    for causal in (False, True):
        mixer = MIXERS[name](causal).double()
        x = torch.randn(1, L, D, dtype=torch.float64, requires_grad=True)
        mixer(x, torch.ones(1, L, dtype=torch.bool))[0, 2].sum().backward()
        later, earlier = x.grad[0, 3:].abs().max(), x.grad[0, :3].abs().max()
        if causal:  # FFT convolutions leave float64 roundoff, nothing more
            assert later <= 1e-12 * earlier
        else:
            assert later > 1e-6 * earlier, "the backward direction does not reach position 2"


@pytest.mark.parametrize("model", [S4, DSS])
def test_kernels_tied_to_max_length_refuse_longer_sequences(model):
    mixer = model(D, max_length=8, d_state=4)
    with pytest.raises(ValueError, match="max_length"):
        mixer(torch.randn(1, 9, D), torch.ones(1, 9, dtype=torch.bool))
