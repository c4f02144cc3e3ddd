"""Mamba and Mamba-2: the chunked scans equal the step-by-step recurrences (values and gradients,
float64, non-zero initial states), the papers' initialisations, padding, both directions, and
the state-space parameters' own optimizer group."""

import pytest
import torch
import torch.nn.functional as F

from lra_bench.optim import parameter_groups
from models.mixers.mamba import Mamba
from models.mixers.mamba2 import Mamba2

F64 = torch.float64
TIGHT = {"rtol": 1e-9, "atol": 1e-11}


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=F64) * scale).requires_grad_()


def assert_same_values_and_gradients(fast, slow, inputs):
    """fast() and slow() return tuples of tensors; compare them and the gradients of a generic
    scalar of them with respect to `inputs`."""
    fast_out, slow_out = fast(), slow()
    for a, b in zip(fast_out, slow_out):
        torch.testing.assert_close(a, b, **TIGHT)

    def loss(outputs):
        return sum(
            (o.sin() * torch.linspace(0.5, 1.5, o.numel(), dtype=F64).view_as(o)).sum()
            for o in outputs
        )

    fast_grads = torch.autograd.grad(loss(fast_out), inputs)
    slow_grads = torch.autograd.grad(loss(slow_out), inputs)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, **TIGHT)


def padded(batch_lengths, length, width):
    x = torch.randn(len(batch_lengths), length, width, dtype=F64)
    mask = torch.arange(length)[None] < torch.tensor(batch_lengths)[:, None]
    return x * mask[..., None], mask


# ----------------------------------------------------------------------------- Mamba


def test_mamba_initialisation_is_the_papers():
    mixer = Mamba(d_model=32, d_state=16, dt_min=0.001, dt_max=0.1)
    for direction in mixer.directions:
        A = -torch.exp(direction.A_log)
        torch.testing.assert_close(A[0], -torch.arange(1.0, 17.0))  # S4D-Real: -(1..N)
        torch.testing.assert_close(A[-1], -torch.arange(1.0, 17.0))
        dt = F.softplus(direction.dt_proj.bias)
        assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
        assert torch.equal(direction.D.detach(), torch.ones(64))
    assert mixer.directions[0].dt_rank == 2  # ceil(32 / 16)


def test_mamba_dt_projection_is_dt_proj_forward_and_backward():
    """project_dt (addmm against W^T, for a fast weight gradient) against nn.Linear itself."""
    direction = Mamba(d_model=32, d_state=4).double().directions[0]
    x_dbl = torch.randn(3, 11, direction.dt_rank + 8, dtype=F64, requires_grad=True)
    dt = x_dbl[..., : direction.dt_rank]  # a slice of x_proj's output, as in the mixer
    grad = torch.randn(3, 11, 64, dtype=F64)
    params = [x_dbl, direction.dt_proj.weight, direction.dt_proj.bias]
    ours = torch.autograd.grad(direction.project_dt(dt), params, grad)
    linear = torch.autograd.grad(direction.dt_proj(dt), params, grad)
    torch.testing.assert_close(direction.project_dt(dt), direction.dt_proj(dt), **TIGHT)
    for a, b in zip(ours, linear, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("causal", [False, True])
def test_mamba_forward_equals_its_step_by_step_recurrence(causal):
    mixer = Mamba(d_model=8, d_state=4, causal=causal, chunk_size=5).double()
    x, mask = padded([13, 7], 13, 8)
    torch.testing.assert_close(mixer(x, mask), mixer.reference(x, mask), **TIGHT)


def test_mamba_backward_scan_starts_at_the_last_real_position():
    mixer = Mamba(d_model=8, d_state=4).double()
    x, mask = padded([16, 9], 16, 8)
    alone = mixer(x[1:, :9], mask[1:, :9])
    torch.testing.assert_close(mixer(x, mask)[1:, :9], alone, **TIGHT)


@pytest.mark.parametrize("mixer_class", [Mamba, Mamba2])
def test_bidirectional_form_sees_both_directions(mixer_class):
    mixer = mixer_class(d_model=16).double()
    x, mask = padded([12], 12, 16)
    x.requires_grad_(True)
    mixer(x, mask)[0, 0].sum().backward()  # the first output ...
    assert x.grad[0, -1].abs().sum() > 0  # ... depends on the last input


@pytest.mark.parametrize("mixer_class", [Mamba, Mamba2])
def test_ssm_parameters_get_their_own_optimizer_group(mixer_class):
    mixer = mixer_class(d_model=16, ssm_lr=2e-4)
    groups = parameter_groups(mixer, lr=1e-2, weight_decay=0.1)
    ssm_group = [g for g in groups if g["lr"] == 2e-4]
    assert len(ssm_group) == 1 and ssm_group[0]["weight_decay"] == 0.0
    names = {name.split(".")[-1] for name in ssm_group[0]["names"]}
    assert names == ({"A_log", "D", "bias"} if mixer_class is Mamba else {"A_log", "D", "dt_bias"})
    decayed = [g for g in groups if g["weight_decay"] == 0.1]
    assert all(not n.endswith(("A_log", "D")) for g in decayed for n in g["names"])


# ----------------------------------------------------------------------------- Mamba-2


def test_mamba2_initialisation_is_the_papers():
    mixer = Mamba2(d_model=32, headdim=16, dt_min=0.001, dt_max=0.1)
    for direction in mixer.directions:
        minus_A = torch.exp(direction.A_log)  # scalar A per head, -A uniform in [1, 16]
        assert minus_A.shape == (4,) and minus_A.min() >= 1 and minus_A.max() <= 16
        dt = F.softplus(direction.dt_bias)
        assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)


@pytest.mark.parametrize("causal,n_groups", [(False, 1), (True, 2)])
def test_mamba2_forward_equals_its_step_by_step_recurrence(causal, n_groups):
    mixer = Mamba2(d_model=8, d_state=4, headdim=4, n_groups=n_groups, causal=causal, chunk_size=4)
    mixer = mixer.double()
    x, mask = padded([11, 6], 11, 8)
    torch.testing.assert_close(mixer(x, mask), mixer.reference(x, mask), **TIGHT)


def test_mamba2_backward_scan_starts_at_the_last_real_position():
    mixer = Mamba2(d_model=8, d_state=4, headdim=4, chunk_size=4).double()
    x, mask = padded([14, 9], 14, 8)
    alone = mixer(x[1:, :9], mask[1:, :9])
    torch.testing.assert_close(mixer(x, mask)[1:, :9], alone, **TIGHT)
