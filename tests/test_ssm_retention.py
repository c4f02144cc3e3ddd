"""RetNet, GLA, RWKV-6 and Mega: the chunked / parallel / FFT forms equal the step-by-step
recurrences (float64, non-zero initial states), the recurrences equal the papers' explicit
sums, the papers' initialisations, padding, both directions, and Mega's parameter groups."""

import math

import pytest
import torch

from lra_bench.optim import parameter_groups
from models.mixers.gla import GatedLinearAttention
from models.mixers.mega import Mega, MultiHeadEMA, RelativePositionBias
from models.mixers.retnet import MultiScaleRetention, retention_decays, rotate_pairs
from models.mixers.rwkv6 import RWKV6TimeMix

F64 = torch.float64
TIGHT = {"rtol": 1e-9, "atol": 1e-11}


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=F64) * scale).requires_grad_()


def padded(batch_lengths, length, width):
    x = torch.randn(len(batch_lengths), length, width, dtype=F64)
    mask = torch.arange(length)[None] < torch.tensor(batch_lengths)[:, None]
    return x * mask[..., None], mask


# ----------------------------------------------------------------------------- RetNet


def test_retention_decays_are_the_papers():
    gamma = torch.exp(retention_decays(4))
    torch.testing.assert_close(
        gamma, torch.tensor([31 / 32, 63 / 64, 127 / 128, 255 / 256], dtype=F64)
    )


def test_rotation_makes_scores_depend_on_relative_position_only():
    q, k = torch.randn(1, 1, 6, 8, dtype=F64), torch.randn(1, 1, 6, 8, dtype=F64)
    positions = torch.arange(6)
    scores = rotate_pairs(q, positions) @ rotate_pairs(k, positions).transpose(-1, -2)
    shifted = rotate_pairs(q, positions + 17) @ rotate_pairs(k, positions + 17).transpose(-1, -2)
    torch.testing.assert_close(scores, shifted, **TIGHT)
    assert not torch.allclose(scores, q @ k.transpose(-1, -2))  # and the rotation does act


@pytest.mark.parametrize("causal", [False, True])
def test_retention_parallel_chunkwise_and_recurrent_forms_agree(causal):
    x, mask = padded([19, 11], 19, 16)
    outputs = {}
    for form in ("parallel", "chunkwise", "recurrent"):
        torch.manual_seed(1)
        mixer = MultiScaleRetention(16, n_heads=4, form=form, chunk_size=8, causal=causal)
        outputs[form] = mixer.double()(x, mask)
    torch.testing.assert_close(outputs["chunkwise"], outputs["recurrent"], **TIGHT)
    torch.testing.assert_close(outputs["parallel"], outputs["recurrent"], **TIGHT)


# ----------------------------------------------------------------------------- mixers


def build(name, causal=False):
    d = 16
    if name == "retnet":
        return MultiScaleRetention(d, chunk_size=8, causal=causal)
    if name == "gla":
        return GatedLinearAttention(d, chunk_size=8, causal=causal)
    if name == "rwkv6":
        return RWKV6TimeMix(d, chunk_size=8, causal=causal)
    return Mega(d, z_dim=8, ema_dim=4, max_length=32, causal=causal)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["gla", "rwkv6", "mega"])
def test_forward_equals_its_step_by_step_recurrence(name, causal):
    mixer = build(name, causal).double()
    x, mask = padded([17, 10], 17, 16)
    torch.testing.assert_close(mixer(x, mask), mixer.reference(x, mask), **TIGHT)


@pytest.mark.parametrize("name", ["retnet", "gla", "rwkv6", "mega"])
def test_backward_pass_starts_at_the_last_real_position(name):
    mixer = build(name).double()
    x, mask = padded([16, 9], 16, 16)
    torch.testing.assert_close(mixer(x, mask)[1:, :9], mixer(x[1:, :9], mask[1:, :9]), **TIGHT)


@pytest.mark.parametrize("name", ["retnet", "gla", "rwkv6", "mega"])
def test_bidirectional_form_sees_both_directions(name):
    mixer = build(name).double()
    x, mask = padded([12], 12, 16)
    x.requires_grad_(True)
    mixer(x, mask)[0, 0].sum().backward()  # the first output ...
    assert x.grad[0, -1].abs().sum() > 0  # ... depends on the last input


def test_gla_gate_is_a_tau_normalised_logsigmoid():
    mixer = GatedLinearAttention(16, gate_logit_normalizer=16.0)
    with torch.no_grad():
        for layer in mixer.gate:
            torch.nn.init.zeros_(layer.weight)
        mixer.gate[1].bias.fill_(2.0)
        log_alpha = torch.nn.functional.logsigmoid(mixer.gate(torch.randn(3, 16))) / 16.0
    # alpha = sigmoid(2)^(1/16)
    torch.testing.assert_close(
        log_alpha.exp(), torch.full((3, 8), (1 / (1 + math.exp(-2))) ** (1 / 16))
    )


def test_rwkv6_initialisation_is_x060s():
    mixer = RWKV6TimeMix(d_model=8, n_heads=2, layer_index=1, n_layers=3)
    depth, shallowness = 0.5, 2 / 3  # layer 1 of 3
    n = torch.arange(8.0)
    torch.testing.assert_close(mixer.mix_x.detach(), 1 - (n / 8) ** shallowness)
    torch.testing.assert_close(
        mixer.mix_static[2].detach(), 1 - (n / 8) ** shallowness - 0.3 * depth
    )
    torch.testing.assert_close(mixer.mix_static[3].detach(), 1 - (n / 8) ** (0.5 * shallowness))
    torch.testing.assert_close(mixer.decay_base.detach(), -6 + 5 * (n / 7) ** (0.7 + 1.3 * depth))
    zigzag = torch.tensor([0.0, 0.1, -0.1, 0.0, 0.1, -0.1, 0.0, 0.1])
    torch.testing.assert_close(mixer.bonus.detach().flatten(), depth * (1 - n / 7) + zigzag)


# ----------------------------------------------------------------------------- Mega


@pytest.mark.parametrize("bidirectional", [False, True])
def test_mega_fft_ema_equals_the_recurrence(bidirectional):
    ema = MultiHeadEMA(6, ema_dim=4, bidirectional=bidirectional, ssm_lr=None).double()
    x = torch.randn(2, 25, 6, dtype=F64)
    torch.testing.assert_close(ema(x, fast=True), ema(x, fast=False), **TIGHT)


def test_mega_ema_kernel_is_the_damped_ema():
    ema = MultiHeadEMA(3, ema_dim=2, bidirectional=False, ssm_lr=None).double()
    p, d = torch.sigmoid(ema.alpha), torch.sigmoid(ema.delta)
    lags = torch.arange(5, dtype=F64)
    expected = (
        (p * ema.beta)[..., None] * (1 - p * d)[..., None] ** lags * ema.gamma[..., None]
    ).sum(1) / math.sqrt(2)
    torch.testing.assert_close(ema.kernel(5), expected, **TIGHT)
    # beta starts near (1, -1): Mega's alternating signs
    assert (ema.beta[:, 0] > 0.8).all() and (ema.beta[:, 1] < -0.8).all()


def test_mega_relative_position_bias_is_toeplitz_in_j_minus_i():
    bias = RelativePositionBias(max_positions=4)
    with torch.no_grad():
        bias.bias.copy_(torch.arange(7.0))  # offsets -3..3
    expected = torch.tensor([[3.0, 4, 5], [2, 3, 4], [1, 2, 3]])  # [i, j] = b[j - i + 3]
    torch.testing.assert_close(bias(3), expected)


def test_mega_chunk_attention_is_block_diagonal_full_attention():
    mixer = Mega(16, z_dim=8, ema_dim=4, chunk_size=4).double()
    q, k, v = (torch.randn(2, 12, w, dtype=F64) for w in (8, 8, 32))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    chunked = mixer._attend(*(t.view(2, 3, 4, -1) for t in (q, k, v)), mask.view(2, 3, 4))
    block = torch.arange(12) // 4
    scores = q @ k.transpose(-1, -2) / math.sqrt(8) + mixer.position_bias(4).repeat(3, 3)
    allowed = (block[:, None] == block[None, :]) & mask[:, None, :]
    expected = scores.masked_fill(~allowed, -math.inf).softmax(-1) @ v
    torch.testing.assert_close(chunked.reshape(2, 12, -1), expected, **TIGHT)


def test_mega_ema_parameters_get_their_own_optimizer_group():
    mixer = Mega(16, ssm_lr=5e-4)
    groups = parameter_groups(mixer, lr=1e-2, weight_decay=0.1)
    ema_group = [g for g in groups if g["lr"] == 5e-4]
    assert len(ema_group) == 1 and ema_group[0]["weight_decay"] == 0.0
    assert sorted(ema_group[0]["names"]) == [
        f"ema.{n}" for n in sorted("alpha beta delta gamma omega".split())
    ]
    # ssm_lr=None (the paper): the global rate, still without weight decay
    groups = parameter_groups(Mega(16), lr=1e-2, weight_decay=0.1)
    for group in groups:
        if any(n.startswith("ema.") for n in group["names"]):
            assert group["lr"] == 1e-2 and group["weight_decay"] == 0.0
