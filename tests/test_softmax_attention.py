import math

import torch

from models.mixers.softmax_attention import SoftmaxAttention


def naive_attention(mixer, x, mask, causal=False):
    b, n, _ = x.shape
    q, k, v = mixer.qkv(x).view(b, n, 3, mixer.n_heads, -1).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = mask[:, None, None, :].expand(b, 1, n, n)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool).tril()
    scores = scores.masked_fill(~allowed, float("-inf"))
    y = scores.softmax(-1) @ v
    return mixer.out(y.transpose(1, 2).reshape(b, n, -1))


def test_matches_naive_attention_with_padding_mask():
    mixer = SoftmaxAttention(d_model=12, n_heads=3, qkv_dim=18)
    x = torch.randn(2, 7, 12)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    torch.testing.assert_close(mixer(x, mask), naive_attention(mixer, x, mask))


def test_causal_matches_naive_causal_attention():
    mixer = SoftmaxAttention(d_model=8, n_heads=2, causal=True)
    x = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    torch.testing.assert_close(mixer(x, mask), naive_attention(mixer, x, mask, causal=True))


def test_materialized_scores_equal_the_fused_kernel_forward_and_gradients():
    torch.manual_seed(0)
    fused = SoftmaxAttention(d_model=12, n_heads=3, qkv_dim=18, causal=True)
    explicit = SoftmaxAttention(
        d_model=12, n_heads=3, qkv_dim=18, causal=True, materialize_scores=True
    )
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 9, 12, requires_grad=True)
    mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
    y_fused, y_explicit = fused(x, mask), explicit(x, mask)
    real = mask[..., None]
    torch.testing.assert_close(y_explicit * real, y_fused * real)
    (g_fused,) = torch.autograd.grad((y_fused * real).square().sum(), x)
    (g_explicit,) = torch.autograd.grad((y_explicit * real).square().sum(), x)
    torch.testing.assert_close(g_explicit, g_fused)
    for a, b in zip(fused.parameters(), explicit.parameters()):
        (ga,) = torch.autograd.grad((fused(x, mask) * real).sum(), a)
        (gb,) = torch.autograd.grad((explicit(x, mask) * real).sum(), b)
        torch.testing.assert_close(gb, ga)
    assert explicit.backend == "torch.explicit_scores" and fused.backend is None  # the op reports


def test_materialized_scores_store_an_l_by_l_tensor():
    """The point of the option: its memory is quadratic in L (the saved softmax weights)."""
    explicit = SoftmaxAttention(d_model=8, n_heads=2, materialize_scores=True)
    x = torch.randn(1, 64, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.shape) or t, lambda t: t
    ):
        explicit(x, torch.ones(1, 64, dtype=torch.bool))
    assert (1, 2, 64, 64) in [tuple(s) for s in saved]
