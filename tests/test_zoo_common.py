"""Properties every mixer in conf/model/ must have (a new config is picked up automatically)."""

import pytest
import torch

from tests.zoo import MODELS, accepts, build_mixer

D, L = 16, 24


def padded_batch(lengths, d=D, length=L):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask  # the backbone zeroes padded inputs


@pytest.mark.parametrize("model", MODELS)
def test_shape_finite_and_gradients_reach_every_parameter(model):
    mixer = build_mixer(model, D, max_length=L)
    x, mask = padded_batch([L, 17])
    x.requires_grad_(True)
    y = mixer(x, mask)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y[mask].pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    unused = [
        n
        for n, p in mixer.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not unused, f"parameters without gradient: {unused}"


@pytest.mark.parametrize("model", MODELS)
def test_padding_does_not_change_real_positions(model):
    mixer = build_mixer(model, D, max_length=L).eval()
    n = 13
    x, mask = padded_batch([L, n])
    with torch.no_grad():
        batched = mixer(x, mask)[1, :n]
        alone = mixer(x[1:, :n], mask[1:, :n])[0]
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", [m for m in MODELS if accepts(m, "causal")])
def test_causal_form_has_no_dependence_on_later_inputs(model):
    mixer = build_mixer(model, D, max_length=L, causal=True).eval()
    x, mask = padded_batch([L])
    x.requires_grad_(True)
    t = 9
    mixer(x, mask)[0, t].sum().backward()
    # FFT convolutions (S4, S4D, DSS, H3, Hyena) are causal in exact arithmetic; float32 FFT
    # round-off leaves ~1e-8 of the gradient's scale on later inputs. A real leak is ~1e-2.
    leak, seen = x.grad[0, t + 1 :].abs().max(), x.grad[0, : t + 1].abs().max()
    assert seen > 0
    assert leak <= 1e-6 * seen, "output at t depends on inputs after t"
