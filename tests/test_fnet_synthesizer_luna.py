"""FNet against numpy's FFT, Synthesizer and Luna against naive forms of their formulas."""

import functools
import math

import numpy as np
import pytest
import torch

from models.mixers.fnet import FourierMixing
from models.mixers.luna import LunaAttention
from models.mixers.synthesizer import SynthesizerAttention


def padded_batch(lengths, length, d):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def split(t, n_heads):
    b, n, _ = t.shape
    return t.view(b, n, n_heads, -1).transpose(1, 2)


def merge(t):
    b, h, n, e = t.shape
    return t.transpose(1, 2).reshape(b, n, h * e)


def naive_softmax(logits, allowed):
    return logits.masked_fill(~allowed, float("-inf")).softmax(-1)


# ---- FNet -----------------------------------------------------------------------------------


def test_fnet_is_the_real_part_of_numpys_2d_fft_over_each_rows_real_length():
    lengths = [9, 6, 9, 1]
    x, mask = padded_batch(lengths, 9, 5)
    y = FourierMixing(d_model=5)(x, mask)
    expected = np.zeros((4, 9, 5))
    for row, n in enumerate(lengths):
        expected[row, :n] = np.fft.fft2(x[row, :n].double().numpy()).real
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_fnet_full_length_batch_takes_one_fft():
    x = torch.randn(3, 8, 4)
    y = FourierMixing(d_model=4)(x, torch.ones(3, 8, dtype=torch.bool))
    np.testing.assert_allclose(y.numpy(), np.fft.fft2(x.double().numpy()).real, atol=1e-5)


# ---- Synthesizer ----------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_dot_product", [False, True])
def test_random_synthesizer_equals_naive_formula(causal, with_dot_product):
    mixer = SynthesizerAttention(
        d_model=12,
        max_length=10,
        kind="random",
        n_heads=3,
        with_dot_product=with_dot_product,
        causal=causal,
    )
    x, mask = padded_batch([7, 4], 7, 12)
    logits = mixer.random_logits[:, :7, :7].expand(2, 3, 7, 7)
    if with_dot_product:
        q, k = (split(t, 3) for t in mixer.query_key(x).chunk(2, -1))
        logits = logits + q @ k.transpose(-1, -2) / math.sqrt(4)
    allowed = mask[:, None, None, :].expand(2, 3, 7, 7)
    if causal:
        allowed = allowed & torch.ones(7, 7, dtype=torch.bool).tril()
    y = naive_softmax(logits, allowed) @ split(mixer.value(x), 3)
    torch.testing.assert_close(mixer(x, mask), mixer.out(merge(y)))


def test_dense_synthesizer_equals_naive_per_position_mlp():
    mixer = SynthesizerAttention(d_model=8, max_length=12, kind="dense", n_heads=2)
    x, mask = padded_batch([6, 3], 6, 8)
    w1, b1 = mixer.dense_hidden.weight, mixer.dense_hidden.bias  # (2*4, 8)
    w2, b2 = mixer.dense_logits.weight, mixer.dense_logits.bias  # (12, 4), shared by heads
    logits = torch.zeros(2, 2, 6, 6)
    for head in range(2):
        rows = slice(4 * head, 4 * head + 4)
        hidden = torch.relu(x @ w1[rows].t() + b1[rows])  # (B, L, 4)
        logits[:, head] = (hidden @ w2.t() + b2)[..., :6]  # first L of max_length columns
    allowed = mask[:, None, None, :].expand(2, 2, 6, 6)
    y = naive_softmax(logits, allowed) @ split(mixer.value(x), 2)
    torch.testing.assert_close(mixer(x, mask), mixer.out(merge(y)))


def test_factorised_and_fixed_random_synthesizer():
    mixer = SynthesizerAttention(
        d_model=8, max_length=9, kind="random", n_heads=2, rank=3, learned=False
    )
    names = dict(mixer.named_parameters())
    assert "random_left" not in names and "random_right" not in names  # fixed: buffers
    x, mask = padded_batch([5], 5, 8)
    logits = mixer.random_left[:, :5] @ mixer.random_right[:, :, :5]  # (H, 5, 5), rank 3
    assert torch.linalg.matrix_rank(logits[0]) == 3
    y = logits.softmax(-1)[None] @ split(mixer.value(x), 2)
    torch.testing.assert_close(mixer(x, mask), mixer.out(merge(y)))


# ---- Luna -----------------------------------------------------------------------------------


def naive_attention(q, k, v, allowed):
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return naive_softmax(logits, allowed) @ v


def test_luna_is_pack_then_unpack_attention():
    mixer = LunaAttention(d_model=12, n_heads=3, packed_length=5)
    x, mask = padded_batch([8, 3], 8, 12)
    p0 = mixer.packed_queries.expand(2, 5, 12)
    p = mixer.packed_norm(p0)  # the carried P is normalised before packing (pre-norm)
    k, v = (split(t, 3) for t in mixer.pack_kv(x).chunk(2, -1))
    packed = naive_attention(split(mixer.pack_q(p), 3), k, v, mask[:, None, None, :])
    packed = mixer.pack_out(merge(packed))  # Y_P: (B, p, D)
    k, v = (split(t, 3) for t in mixer.unpack_kv(packed).chunk(2, -1))
    y = naive_attention(split(mixer.unpack_q(x), 3), k, v, torch.ones(1, 1, 1, 5, dtype=bool))
    torch.testing.assert_close(mixer(x, mask), mixer.out(merge(y)))
    y_carry, next_p = mixer.forward_carry(x, mask, None)
    torch.testing.assert_close(next_p, p0 + packed)  # P + Y_P goes to the next layer


def test_luna_carries_the_packed_sequence_up_the_stack():
    """Only layer 0 owns P; the backbone hands every later layer the P of the layer below."""
    from models.backbone import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=10,
        num_classes=3,
        max_length=9,
        mixer=functools.partial(LunaAttention, n_heads=2, packed_length=4),
        d_model=8,
        n_layers=3,
        d_ff=16,
        dropout=0.0,
        pooling="mean",
    ).eval()
    first, second, third = (block.mixer for block in model.blocks)
    assert first.packed_queries is not None
    assert second.packed_queries is None and third.packed_queries is None
    with pytest.raises(ValueError, match="layer_index > 0"):
        second(torch.randn(1, 9, 8), torch.ones(1, 9, dtype=torch.bool))
    tokens, lengths = torch.randint(1, 10, (2, 9)), torch.tensor([9, 5])
    # The stack by hand: each block's mixer gets the carry of the block below.
    x = model.positions(model.embed(tokens))
    mask = torch.arange(9) < lengths[:, None]
    carry = None
    for block in model.blocks:
        h = block.mixer_norm(x) * mask[..., None]
        y, carry = block.mixer.forward_carry(h, mask, carry)
        x = x + y
        x = x + block.ffn(block.ffn_norm(x))
    torch.testing.assert_close(model.encode(tokens, lengths), model.pool(model.final_norm(x), mask))
    # The learned P reaches the top layer's output through the carry.
    model.encode(tokens, lengths).sum().backward()
    assert first.packed_queries.grad.abs().sum() > 0
    assert third.packed_norm.weight.grad.abs().sum() > 0
