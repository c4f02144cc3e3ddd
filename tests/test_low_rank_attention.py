"""Low-rank attention (Linformer, Nystromformer) against exact softmax attention and against
naive forms of their own formulas."""

import math

import pytest
import torch

from models.layers.projections import merge_heads, split_heads
from models.mixers.linformer import LinformerAttention
from models.mixers.nystromformer import (
    NystromAttention,
    iterative_pinv,
    segment_means_matrix,
)
from models.mixers.softmax_attention import SoftmaxAttention
from models.ops.dispatch import backend_override


def padded_batch(lengths, length, d):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def heads(mixer, x):
    b, n, _ = x.shape
    return mixer.qkv(x).view(b, n, 3, mixer.n_heads, -1).permute(2, 0, 3, 1, 4)


def finish(mixer, y):
    b, h, n, e = y.shape
    return mixer.out(y.transpose(1, 2).reshape(b, n, h * e))


def with_weights_of(mixer, exact):
    """`mixer` with the q/k/v/out projections of `exact`."""
    mixer.load_state_dict({**mixer.state_dict(), **exact.state_dict()})
    return mixer


def relative_rmse(actual, expected):
    return ((actual - expected).pow(2).mean() / expected.pow(2).mean()).sqrt().item()


# ---- Linformer ------------------------------------------------------------------------------


def test_linformer_with_identity_projection_is_softmax_attention():
    exact = SoftmaxAttention(d_model=12, n_heads=3, qkv_dim=18)
    mixer = LinformerAttention(d_model=12, max_length=9, n_heads=3, qkv_dim=18, projected_length=9)
    with_weights_of(mixer, exact)
    with torch.no_grad():
        mixer.key_projection.copy_(torch.eye(9))
    x = torch.randn(2, 9, 12)
    mask = torch.ones(2, 9, dtype=torch.bool)
    torch.testing.assert_close(mixer(x, mask), exact(x, mask))


def test_linformer_equals_naive_projected_attention_with_padding():
    mixer = LinformerAttention(
        d_model=12, max_length=10, n_heads=3, projected_length=4, share_kv=False
    )
    x, mask = padded_batch([8, 5], 8, 12)
    q, k, v = heads(mixer, x)
    real = mask[:, None, :, None].float()
    e = mixer.key_projection[:, :8]
    f = mixer.value_projection[:, :8]
    projected_k = e @ (k * real)  # (B, H, 4, d): padded keys contribute nothing
    projected_v = f @ (v * real)
    weights = (q @ projected_k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
    torch.testing.assert_close(mixer(x, mask), finish(mixer, weights @ projected_v))


def test_linformer_shares_one_projection_by_default():
    mixer = LinformerAttention(d_model=8, max_length=16, n_heads=2, projected_length=4)
    assert mixer.value_projection is None
    assert mixer.key_projection.shape == (4, 16)


# ---- Nystromformer --------------------------------------------------------------------------


def test_segment_means_tile_the_real_positions_of_each_row():
    mask = torch.tensor([[True] * 5 + [False], [True] * 6])
    weights, valid = segment_means_matrix(mask, n_landmarks=2)
    third, half = 1 / 3, 1 / 2
    expected = torch.tensor(
        [
            # 5 real: positions 0-2 -> segment 0, 3-4 -> segment 1 (floor(2i / 5))
            [[third, third, third, 0, 0, 0], [0, 0, 0, half, half, 0]],
            [[third, third, third, 0, 0, 0], [0, 0, 0, third, third, third]],
        ]
    )
    torch.testing.assert_close(weights, expected)
    assert valid.all()
    _, valid = segment_means_matrix(torch.tensor([[True] * 3 + [False] * 3]), n_landmarks=5)
    assert valid.sum() == 3  # fewer real positions than landmarks: empty segments left out


def test_iterative_pinv_converges_to_the_moore_penrose_inverse():
    a = (torch.randn(2, 3, 8, 8) * 2).softmax(-1)
    expected = torch.linalg.pinv(a.double()).float()
    torch.testing.assert_close(iterative_pinv(a, iterations=40), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("lengths", [[16, 16], [16, 10]])
def test_nystromformer_with_a_landmark_per_position_approaches_softmax_attention(lengths):
    exact = SoftmaxAttention(d_model=16, n_heads=2)
    x, mask = padded_batch(lengths, 16, 16)
    errors = {}
    for iterations in (6, 30):
        mixer = NystromAttention(
            d_model=16, n_heads=2, n_landmarks=16, pinv_iterations=iterations, conv_kernel_size=0
        )
        with torch.no_grad():
            errors[iterations] = relative_rmse(
                with_weights_of(mixer, exact)(x, mask)[mask], exact(x, mask)[mask]
            )
    # Measured 1.4e-2 to 1.9e-2 with the paper's 6 iterations over three seeds, and 2e-5 to
    # 2e-4 with 30 (where fp32 rounding of an ill-conditioned A floors it).
    assert errors[6] < 3e-2, errors
    assert errors[30] < 1e-3, errors


def test_nystromformer_equals_the_reference_formula_on_full_rows():
    """Landmarks as contiguous-segment means (the reference code's reshape-mean when m divides
    L), pinv by the paper's iteration, the value convolution added."""
    torch.manual_seed(3)
    mixer = NystromAttention(d_model=12, n_heads=3, n_landmarks=4, conv_kernel_size=5)
    x = torch.randn(2, 12, 12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    q, k, v = heads(mixer, x)
    scale = q.shape[-1] ** -0.25
    q, k = q * scale, k * scale
    q_l = q.reshape(2, 3, 4, 3, -1).mean(-2)
    k_l = k.reshape(2, 3, 4, 3, -1).mean(-2)
    kernel_1 = (q @ k_l.transpose(-1, -2)).softmax(-1)
    kernel_2 = (q_l @ k_l.transpose(-1, -2)).softmax(-1)
    kernel_3 = (q_l @ k.transpose(-1, -2)).softmax(-1)
    z = kernel_2.transpose(-1, -2) / (
        kernel_2.sum(-2).amax(-1)[..., None, None] * kernel_2.sum(-1).amax(-1)[..., None, None]
    )
    eye = torch.eye(4)
    for _ in range(6):
        kz = kernel_2 @ z
        z = 0.25 * z @ (13 * eye - kz @ (15 * eye - kz @ (7 * eye - kz)))
    y = kernel_1 @ z @ kernel_3 @ v + mixer.value_conv(v)
    torch.testing.assert_close(mixer(x, mask), finish(mixer, y), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_nystromformer_value_skip_is_the_per_head_convolution_with_its_gradients(backend):
    """value_skip (the causal op on channels-last values, shifted) against nn.Conv2d's grouped
    (k, 1) convolution over (B, H, L, E), the layer's parameters; values and weight gradients."""
    torch.manual_seed(4)
    mixer = NystromAttention(d_model=12, n_heads=3, n_landmarks=4, conv_kernel_size=7)
    v = torch.randn(2, 10, 12, requires_grad=True)
    with backend_override(backend):
        ours = mixer.value_skip(v)
    expected = merge_heads(mixer.value_conv(split_heads(v, 3)))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (v, mixer.value_conv.weight), grad)
    expected_grads = torch.autograd.grad(expected, (v, mixer.value_conv.weight), grad)
    for a, b in zip(ours_grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
