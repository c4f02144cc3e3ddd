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
