"""Reformer's LSH attention and Sparse Sinkhorn attention: exact equivalences with full attention
where the pattern covers everything, dense references built from the mixers' own hashing /
sorting otherwise, and the properties their papers give them."""

import math

import pytest
import torch

from models.mixers.reformer import SELF_PENALTY, LSHAttention
from models.mixers.sinkhorn import SinkhornAttention, sinkhorn
from models.mixers.softmax_attention import SoftmaxAttention

D, H = 12, 3


def padded_batch(lengths, length, d=D):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def assert_real_close(actual, expected, mask):
    torch.testing.assert_close(actual[mask], expected[mask], rtol=1e-5, atol=1e-5)


# --- Reformer ------------------------------------------------------------------------------


def lsh_reference(mixer, x, mask, pattern):
    """Full attention with shared QK (keys = unit-length queries * sqrt(E)), the self penalty,
    restricted to pattern (B|1, H|1, L, L)."""
    b, n, _ = x.shape
    qk = mixer.qk(x).view(b, n, mixer.n_heads, -1).transpose(1, 2)
    v = mixer.v(x).view(b, n, mixer.n_heads, -1).transpose(1, 2)
    keys = qk / qk.norm(dim=-1, keepdim=True) * math.sqrt(qk.shape[-1])
    scores = qk @ keys.transpose(-1, -2) / math.sqrt(qk.shape[-1]) - SELF_PENALTY * torch.eye(n)
    allowed = mask[:, None, None, :] & pattern
    y = scores.masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num() @ v
    return mixer.out(y.transpose(1, 2).reshape(b, n, -1))


def lsh_union_pattern(mixer, x, mask):
    """(B, H, L, L): j is in i's set in some round (same bucket, j's chunk is i's or the one
    before, after sorting by (bucket, position)), from the mixer's own eval-mode hashes."""
    b, n, _ = x.shape
    qk = mixer.qk(x).view(b, n, mixer.n_heads, -1).transpose(1, 2)
    buckets = mixer.buckets(qk, mask, mixer.rotations)
    pattern = torch.zeros(b, mixer.n_heads, n, n, dtype=torch.bool)
    for r in range(mixer.n_hashes):
        bucket = buckets[:, :, r]
        order = (bucket * n + torch.arange(n)).argsort(-1)
        chunk = order.argsort(-1) // mixer.chunk_size
        behind = chunk[..., :, None] - chunk[..., None, :]
        pattern |= (bucket[..., :, None] == bucket[..., None, :]) & (behind >= 0) & (behind <= 1)
    return pattern


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_hashes", [1, 3])
def test_reformer_with_one_shared_chunk_equals_full_attention_without_self(causal, n_hashes):
    n = 10
    x, mask = padded_batch([10, 7], n)
    mixer = LSHAttention(D, H, n_buckets=2, n_hashes=n_hashes, chunk_size=16, causal=causal)
    # n_buckets=2 can split the sequence; force one bucket by hashing everything to bucket 0.
    mixer.rotations.zero_()
    pattern = torch.ones(n, n, dtype=torch.bool)
    if causal:
        pattern = pattern.tril()
    with torch.no_grad():
        expected = lsh_reference(mixer, x, mask, pattern)
        assert_real_close(mixer.eval()(x, mask), expected, mask)
    # The self penalty: position 0 of a causal sequence has only itself, others never see self.
    if causal:
        v0 = mixer.out(mixer.v(x)[:, 0])
        torch.testing.assert_close(expected[:, 0], v0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n_buckets", "n_hashes", "chunk"), [(4, 1, 4), (4, 3, 4), (8, 2, 3)])
def test_reformer_rounds_combine_to_the_softmax_over_their_union(
    causal, n_buckets, n_hashes, chunk
):
    n = 29
    x, mask = padded_batch([29, 21], n)
    mixer = LSHAttention(
        D, H, n_buckets=n_buckets, n_hashes=n_hashes, chunk_size=chunk, causal=causal
    )
    mixer.eval()
    with torch.no_grad():
        pattern = lsh_union_pattern(mixer, x, mask)
        if causal:
            pattern = pattern & torch.ones(n, n, dtype=torch.bool).tril()
        assert not pattern[0, 0].all(), "the test pattern should be sparse"
        assert_real_close(mixer(x, mask), lsh_reference(mixer, x, mask, pattern), mask)


def test_reformer_padding_is_exact_with_many_buckets_and_chunks():
    x, mask = padded_batch([30, 17], 30)
    mixer = LSHAttention(D, H, n_buckets=6, n_hashes=2, chunk_size=4).eval()
    with torch.no_grad():
        batched = mixer(x, mask)[1, :17]
        alone = mixer(x[1:, :17], mask[1:, :17])[0]
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_reformer_rotations_are_fixed_in_eval_and_redrawn_in_training():
    x, mask = padded_batch([20], 20)
    mixer = LSHAttention(D, H, n_buckets=8, n_hashes=1, chunk_size=4)
    with torch.no_grad():
        assert torch.equal(mixer.eval()(x, mask), mixer(x, mask))
        mixer.train()
        draws = [mixer(x, mask) for _ in range(4)]
    assert any(not torch.allclose(draws[0], d) for d in draws[1:])


# --- Sinkhorn ------------------------------------------------------------------------------


def test_sinkhorn_normalisation_converges_to_the_known_doubly_stochastic_limit():
    # For a positive 2 x 2 matrix A the limit is [[p, 1 - p], [1 - p, p]] with
    # p / (1 - p) = sqrt(a11 a22 / (a12 a21)); here 1 / sqrt(6).
    log_alpha = torch.tensor([[0.0, math.log(2.0)], [math.log(3.0), 0.0]])
    p = 1.0 / (1.0 + math.sqrt(6.0))
    limit = sinkhorn(log_alpha, torch.ones(2, 2, dtype=torch.bool), iters=50, causal=False)
    torch.testing.assert_close(limit, torch.tensor([[p, 1 - p], [1 - p, p]]))
    big = sinkhorn(torch.randn(4, 6, 6), torch.ones(6, 6, dtype=torch.bool), 200, causal=False)
    torch.testing.assert_close(big.sum(-1), torch.ones(4, 6))
    torch.testing.assert_close(big.sum(-2), torch.ones(4, 6))


def test_causal_sinkhorn_only_sorts_earlier_blocks_and_rows_ignore_later_ones():
    allowed = torch.ones(5, 5, dtype=torch.bool).tril(-1)
    log_alpha = torch.randn(5, 5, requires_grad=True)
    perm = sinkhorn(log_alpha, allowed, iters=4, causal=True)
    assert torch.equal(perm.triu(), torch.zeros(5, 5))
    # Row 2 may depend on rows 0..2 of the scores only (causal column normalisation).
    perm[2].sum().backward()
    assert log_alpha.grad[3:].abs().max() == 0
    assert log_alpha.grad[:3].abs().sum() > 0


@pytest.mark.parametrize("causal", [False, True])
def test_sinkhorn_with_a_single_block_equals_full_attention(causal):
    # One block: P = [[1]], the sorted block is the block itself, and attending to two copies of
    # the same keys is attending to them once.
    x, mask = padded_batch([11, 7], 11)
    mixer = SinkhornAttention(D, H, block_size=16, max_length=16, causal=causal)
    reference = SoftmaxAttention(D, n_heads=H, causal=causal)
    reference.qkv.weight.data.copy_(mixer.qkv.weight)
    reference.out.weight.data.copy_(mixer.out.weight)
    assert_real_close(mixer(x, mask), reference(x, mask), mask)


def sinkhorn_reference(mixer, x, mask):
    """Block by block with the mixer's own P: query block i attends to [sum_j P_ij K_j ; K_i]."""
    b, n, _ = x.shape
    width = mixer.block_size
    q, k, v = mixer.qkv(x).view(b, n, 3, mixer.n_heads, -1).permute(2, 0, 3, 1, 4)
    real = mask[:, None, :, None].float()
    k, v = k * real, v * real
    blocks = n // width
    kb, vb = k.unflatten(2, (blocks, width)), v.unflatten(2, (blocks, width))
    valid = mask.unflatten(1, (blocks, width))
    perm = mixer.sort_matrix(kb, valid.any(-1))
    out = torch.zeros_like(q)
    for i in range(blocks):
        rows = slice(i * width, (i + 1) * width)
        sorted_k = sum(perm[:, :, i, j, None, None] * kb[:, :, j] for j in range(blocks))
        sorted_v = sum(perm[:, :, i, j, None, None] * vb[:, :, j] for j in range(blocks))
        sorted_ok = (
            sum(perm[:, :, i, j, None] * valid[:, None, j].float() for j in range(blocks)) > 0
        )
        keys, values = (
            torch.cat([sorted_k, k[:, :, rows]], 2),
            torch.cat([sorted_v, v[:, :, rows]], 2),
        )
        own_ok = valid[:, None, i, None, :].expand(-1, mixer.n_heads, width, -1)
        if mixer.causal:
            own_ok = own_ok & torch.ones(width, width, dtype=torch.bool).tril()
        allowed = torch.cat([sorted_ok[:, :, None, :].expand(-1, -1, width, -1), own_ok], -1)
        scores = q[:, :, rows] @ keys.transpose(-1, -2) / math.sqrt(q.shape[-1])
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num()
        out[:, :, rows] = weights @ values
    return mixer.out(out.transpose(1, 2).reshape(b, n, -1)), perm


@pytest.mark.parametrize("causal", [False, True])
def test_sinkhorn_equals_blockwise_reference_with_its_sort_matrix(causal):
    n, width = 24, 4
    x, mask = padded_batch([24, 14], n)  # the second sequence ends inside block 3
    mixer = SinkhornAttention(D, H, block_size=width, max_length=n, causal=causal).eval()
    with torch.no_grad():
        expected, perm = sinkhorn_reference(mixer, x, mask)
        assert_real_close(mixer(x, mask), expected, mask)
    # Blocks past the end of a sequence are sorted with nothing.
    assert perm[1, :, 4:].abs().max() == 0 and perm[1, :, :, 4:].abs().max() == 0
    if causal:
        assert perm[:, :, 0].abs().max() == 0  # the first block has no earlier block
    else:
        torch.testing.assert_close(perm[1, :, :4, :4].sum(-1), torch.ones(H, 4))


def test_causal_sinkhorn_has_no_dependence_on_later_positions_in_later_blocks():
    x, mask = padded_batch([24], 24)
    x.requires_grad_(True)
    mixer = SinkhornAttention(D, H, block_size=4, max_length=24, causal=True)
    for t in (13, 18):
        (grad,) = torch.autograd.grad(mixer(x, mask)[0, t].sum(), x)
        assert grad[0, t + 1 :].abs().max() == 0
        assert grad[0, : 4 * (t // 4)].abs().sum() > 0, "earlier blocks reach it through sorting"


def test_sinkhorn_is_deterministic_in_eval_and_noisy_in_training():
    x, mask = padded_batch([24], 24)
    mixer = SinkhornAttention(D, H, block_size=4, max_length=24)
    with torch.no_grad():
        assert torch.equal(mixer.eval()(x, mask), mixer(x, mask))
        mixer.train()
        assert not torch.allclose(mixer(x, mask), mixer(x, mask))
