"""Kernelised attention (Linear Transformer, Performer, cosFormer) against naive quadratic
references of the same kernel, and Performer against exact softmax attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from models.layers.kernel_attention import causal_linear_attention
from models.layers.projections import split_heads
from models.mixers.cosformer import CosFormerAttention
from models.mixers.linear_attention import LinearAttention
from models.mixers.performer import PerformerAttention, orthogonal_gaussian_features
from models.mixers.softmax_attention import SoftmaxAttention


def padded_batch(lengths, length, d):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def naive_kernel_attention(similarity, v, mask, causal, eps):
    """similarity: (B, H, L, L) non-negative kernel values; the quadratic oracle."""
    length = v.shape[2]
    allowed = mask[:, None, None, :].expand_as(similarity)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    weights = similarity * allowed
    return (weights @ v) / weights.sum(-1, keepdim=True).clamp_min(eps)


def projections(mixer, x):
    return [split_heads(t, mixer.n_heads) for t in mixer.qkv(x).chunk(3, dim=-1)]


def finish(mixer, y):
    b, h, n, e = y.shape
    return mixer.out(y.transpose(1, 2).reshape(b, n, h * e))


def relative_rmse(actual, expected):
    return ((actual - expected).pow(2).mean() / expected.pow(2).mean()).sqrt().item()


# ---- Linear Transformer ---------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_linear_transformer_equals_naive_quadratic_kernel(causal):
    mixer = LinearAttention(d_model=12, n_heads=3, causal=causal, chunk_size=4)
    x, mask = padded_batch([11, 7], 11, 12)
    q, k, v = projections(mixer, x)
    similarity = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-1, -2)
    expected = finish(mixer, naive_kernel_attention(similarity, v, mask, causal, mixer.eps))
    actual = mixer(x, mask)
    torch.testing.assert_close(actual[mask], expected[mask], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 64])
def test_chunked_causal_form_does_not_depend_on_chunk_size(chunk_size):
    q, k = torch.rand(2, 2, 3, 13, 5)  # non-negative features
    v = torch.randn(2, 3, 13, 4)
    mask = torch.ones(2, 13, dtype=torch.bool)
    expected = naive_kernel_attention(q @ k.transpose(-1, -2), v, mask, True, 1e-6)
    actual = causal_linear_attention(q, k, v, eps=1e-6, chunk_size=chunk_size)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


# ---- Performer ------------------------------------------------------------------------------


def test_orthogonal_features_are_orthogonal_within_a_block_and_gaussian_in_length():
    torch.manual_seed(1)
    w = orthogonal_gaussian_features(4096, 16)
    block = w[:16]
    gram = block @ block.t()
    off_diagonal = gram - torch.diag(torch.diagonal(gram))
    assert off_diagonal.abs().max() < 1e-4
    # Rows scaled to chi(16) lengths: E|w|^2 = 16 for an N(0, I_16) row.
    assert abs(w.pow(2).sum(1).mean().item() - 16.0) < 0.5


@pytest.mark.parametrize("causal", [False, True])
def test_performer_equals_naive_quadratic_form_of_its_features(causal):
    """The stabilised linear form equals exp(w.q - |q|^2/2) . exp(w.k - |k|^2/2) summed
    naively, so the stabilisers cancel exactly as claimed."""
    mixer = PerformerAttention(d_model=12, n_heads=3, n_features=32, causal=causal, chunk_size=4)
    x, mask = padded_batch([10, 6], 10, 12)
    q, k, v = projections(mixer, x)
    scale = mixer.head_dim**-0.25

    def features(t):
        t = t * scale
        return torch.exp(t @ mixer.projection.t() - t.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(
            32
        )

    similarity = features(q) @ features(k).transpose(-1, -2)
    expected = finish(mixer, naive_kernel_attention(similarity, v, mask, causal, 1e-30))
    actual = mixer.eval()(x, mask)
    torch.testing.assert_close(actual[mask], expected[mask], rtol=1e-4, atol=1e-5)


def performer_error(n_features, seed, causal=False):
    """Relative RMSE of FAVOR+ against exact softmax attention with the same weights."""
    torch.manual_seed(seed)
    exact = SoftmaxAttention(d_model=16, n_heads=2, causal=causal)
    approx = PerformerAttention(d_model=16, n_heads=2, n_features=n_features, causal=causal)
    approx.load_state_dict({**approx.state_dict(), **exact.state_dict()})
    x, mask = padded_batch([16, 11], 16, 16)
    # FAVOR+'s relative variance grows like exp(|q + k|^2): moderate inputs keep the estimate
    # in the regime where its 1/sqrt(m) convergence is visible at test sizes.
    x = 0.5 * x
    with torch.no_grad():
        return relative_rmse(approx.eval()(x, mask)[mask], exact(x, mask)[mask])


def test_performer_approaches_softmax_attention_as_features_grow():
    errors = {m: sum(performer_error(m, seed) for seed in range(3)) / 3 for m in (16, 256, 8192)}
    # Measured: about 0.22, 0.054 and 0.013; the Monte Carlo error falls like 1/sqrt(m).
    assert errors[8192] < 0.025, errors
    assert errors[16] > errors[256] > errors[8192], errors


def test_causal_performer_approaches_causal_softmax_attention():
    assert performer_error(8192, seed=0, causal=True) < 0.02  # measured 0.008


def test_performer_redraws_features_in_training_only():
    mixer = PerformerAttention(d_model=8, n_heads=2, n_features=8, redraw_interval=2)
    x, mask = padded_batch([5], 5, 8)
    first = mixer.projection.clone()
    mixer(x, mask)
    mixer(x, mask)
    assert torch.equal(mixer.projection, first)  # two forwards on the first draw
    mixer(x, mask)
    assert not torch.equal(mixer.projection, first)  # the third redraws
    drawn = mixer.projection.clone()
    mixer.eval()
    for _ in range(5):
        mixer(x, mask)
    assert torch.equal(mixer.projection, drawn)
    assert "projection" in mixer.state_dict()  # a checkpoint keeps the features it used


# ---- cosFormer ------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_cosformer_equals_naive_cos_reweighted_kernel(causal):
    mixer = CosFormerAttention(d_model=12, n_heads=3, causal=causal, chunk_size=4)
    lengths = [9, 5]
    x, mask = padded_batch(lengths, 9, 12)
    q, k, v = projections(mixer, x)
    i = torch.arange(9, dtype=torch.float32)
    n = torch.tensor(lengths, dtype=torch.float32)
    # cos(pi/2 (i - j) / n), n the row's real length
    reweighting = torch.cos(math.pi / 2 * (i[:, None] - i[None, :]) / n[:, None, None])
    similarity = (F.relu(q) @ F.relu(k).transpose(-1, -2)) * reweighting[:, None]
    expected = finish(mixer, naive_kernel_attention(similarity, v, mask, causal, mixer.eps))
    torch.testing.assert_close(mixer(x, mask)[mask], expected[mask], rtol=1e-5, atol=1e-6)
