"""Sparse-pattern mixers (local, sliding window, Sparse Transformer, Longformer, BigBird) against
full attention where the pattern covers everything, and against a dense reference built from an
explicit L x L mask of the same pattern (here in the tests only) otherwise."""

import math

import pytest
import torch

from models.mixers.bigbird import BigBirdAttention
from models.mixers.local_attention import LocalAttention
from models.mixers.longformer import LongformerAttention
from models.mixers.sliding_window_attention import SlidingWindowAttention
from models.mixers.softmax_attention import SoftmaxAttention
from models.mixers.sparse_transformer import SparseTransformerAttention
from models.ops.attention.blocked import (
    MASKED,
    Part,
    attend,
    blocked_sdpa,
    merge_parts,
    neighbour_blocks,
    neighbour_blocks_of,
)

D, H = 12, 3


def padded_batch(lengths, length, d=D):
    x = torch.randn(len(lengths), length, d)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask[..., None], mask


def dense_heads(q, k, v, allowed):
    """Naive softmax attention of (B, H, L, E) tensors under an explicit (B|1, H|1, L, L) mask."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return weights.nan_to_num() @ v


def dense_reference(mixer, x, mask, pattern):
    """mixer's projections, then full attention restricted to pattern (L, L) or (B, H, L, L)."""
    b, n, _ = x.shape
    q, k, v = mixer.qkv(x).view(b, n, 3, mixer.n_heads, -1).permute(2, 0, 3, 1, 4)
    y = dense_heads(q, k, v, mask[:, None, None, :] & pattern)
    return mixer.out(y.transpose(1, 2).reshape(b, n, -1))


def causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril()


def same_weights(mixer, causal):
    reference = SoftmaxAttention(D, n_heads=H, causal=causal)
    reference.qkv.weight.data.copy_(mixer.qkv.weight)
    reference.out.weight.data.copy_(mixer.out.weight)
    return reference


def assert_real_close(actual, expected, mask):
    torch.testing.assert_close(actual[mask], expected[mask], rtol=1e-5, atol=1e-5)


# --- the helpers ---------------------------------------------------------------------------


def test_merged_parts_equal_one_softmax_over_all_keys():
    q, k, v = torch.randn(2, 5, 4), torch.randn(2, 9, 4), torch.randn(2, 9, 3)
    allowed = torch.rand(2, 5, 9) > 0.3
    allowed[..., 0] = True
    whole = attend(q, k, v, allowed)
    parts = [
        attend(q, k[:, :4], v[:, :4], allowed[..., :4]),
        attend(q, k[:, 4:], v[:, 4:], allowed[..., 4:]),
    ]
    torch.testing.assert_close(merge_parts(parts), whole.out)
    expected = dense_heads(q, k, v, allowed)
    torch.testing.assert_close(whole.out, expected)


def test_a_part_without_allowed_keys_gets_no_weight_in_a_merge():
    q, k, v = torch.randn(1, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    empty = attend(q, k, v, torch.zeros(1, 2, 3, dtype=torch.bool))
    assert torch.isfinite(empty.out).all() and (empty.lse < -1e29).all()
    full = attend(q, k, v, torch.ones(1, 2, 3, dtype=torch.bool))
    assert torch.equal(merge_parts([empty, full]), full.out)
    assert isinstance(full, Part)


def test_attend_log_sum_exp_and_its_gradient_are_those_of_the_allowed_scores():
    """attend's lse (taken from the softmax, not from logsumexp) equals log sum exp over the
    allowed keys' scaled scores plus bias, and so does its gradient (float32 softmax)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 6, n, 4, generator=g, dtype=torch.float64) for n in (5, 7, 7))
    bias = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    allowed = torch.rand(2, 6, 5, 7, generator=g) > 0.4
    allowed[..., 0] = True
    leaves = [t.clone().requires_grad_() for t in (q, k, bias)]
    lse = attend(leaves[0], leaves[1], v, allowed, leaves[2]).lse
    leaves_ref = [t.clone().requires_grad_() for t in (q, k, bias)]
    # Head width 4: scale 1/2.
    scores = (leaves_ref[0] / 2) @ leaves_ref[1].transpose(-1, -2) + leaves_ref[2]
    expected = scores.masked_fill(~allowed, -math.inf).logsumexp(-1)
    torch.testing.assert_close(lse, expected, rtol=1e-6, atol=1e-6)  # softmax in float32
    weights = torch.randn(lse.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((lse * weights).sum(), leaves)
    grads_ref = torch.autograd.grad((expected * weights).sum(), leaves_ref)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_blocked_sdpa_gives_padded_queries_finite_rows_and_real_rows_their_keys():
    # Block 1 of 2 is all padding; its queries have no allowed key but must not give NaN.
    q, k, v = torch.randn(3, 1, 1, 8, 4).unbind(0)
    mask = torch.tensor([[True] * 3 + [False] * 5])
    blocked = neighbour_blocks_of(q, k, v, mask, width=4, before=0, after=0)
    out = blocked_sdpa(blocked, mask)
    assert torch.isfinite(out).all()
    expected = dense_heads(q, k, v, mask[:, None, None, :])  # block 0 holds every real key
    torch.testing.assert_close(out[:, :, :3], expected[:, :, :3])


def test_neighbour_blocks_concatenates_previous_own_and_next_block():
    blocks = torch.arange(6).view(3, 2)  # blocks [0 1] [2 3] [4 5]
    expected = torch.tensor([[-1, -1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [2, 3, 4, 5, -1, -1]])
    assert torch.equal(neighbour_blocks(blocks, 0, 1, 1, value=-1), expected)


# --- local and sliding window --------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_local_and_sliding_window_covering_the_sequence_equal_full_attention(causal):
    x, mask = padded_batch([11, 7], 11)
    for mixer in (
        LocalAttention(D, H, block_size=11, causal=causal),
        SlidingWindowAttention(D, H, window=10, causal=causal),
    ):
        assert_real_close(mixer(x, mask), same_weights(mixer, causal)(x, mask), mask)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("look_backward", [False, True])
def test_local_attention_equals_its_dense_block_pattern(causal, look_backward):
    n, width = 13, 4
    x, mask = padded_batch([13, 9], n)
    mixer = LocalAttention(D, H, block_size=width, look_backward=look_backward, causal=causal)
    block = torch.arange(n) // width
    gap = block[:, None] - block[None, :]
    pattern = (gap == 0) | ((gap == 1) if look_backward else False)
    if causal:
        pattern = pattern & causal_mask(n)
    assert_real_close(mixer(x, mask), dense_reference(mixer, x, mask, pattern), mask)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [0, 1, 3, 5])
def test_sliding_window_equals_its_dense_band(causal, window):
    n = 14
    x, mask = padded_batch([14, 10], n)
    mixer = SlidingWindowAttention(D, H, window=window, causal=causal)
    offset = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    pattern = (offset >= 0) & (offset <= window) if causal else offset.abs() <= window
    assert_real_close(mixer(x, mask), dense_reference(mixer, x, mask, pattern), mask)


# --- Sparse Transformer --------------------------------------------------------------------


def sparse_transformer_pattern(n, pattern, stride, summary, causal):
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    if pattern == "strided":
        allowed = ((i - j).abs() <= stride) | ((i - j) % stride == 0)
    else:
        allowed = (i // stride == j // stride) | (j % stride >= stride - summary)
    return allowed & (j <= i) if causal else allowed


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pattern", ["strided", "fixed"])
@pytest.mark.parametrize("query_chunk", [1024, 5])
def test_sparse_transformer_equals_dense_masked_reference(pattern, causal, query_chunk):
    n, stride, summary = 37, 4, 2
    x, mask = padded_batch([37, 26], n)
    x.requires_grad_(True)
    mixer = SparseTransformerAttention(
        D,
        H,
        pattern=pattern,
        stride=stride,
        summary=summary,
        causal=causal,
        query_chunk=query_chunk,
    )
    allowed = sparse_transformer_pattern(n, pattern, stride, summary, causal)
    y, expected = mixer(x, mask), dense_reference(mixer, x, mask, allowed)
    assert_real_close(y, expected, mask)
    # Gradients too: small chunks take the checkpointed path.
    (grad,) = torch.autograd.grad(y[mask].square().sum(), x)
    (expected_grad,) = torch.autograd.grad(expected[mask].square().sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5)


def test_sparse_transformer_pattern_is_really_sparse():
    # The reference patterns themselves: fixed l=4, c=1 at L=16 lets query 0 see its block (4)
    # and the last cell of the 3 other blocks: 7 keys, not 16.
    allowed = sparse_transformer_pattern(16, "fixed", 4, 1, causal=False)
    assert allowed[0].sum() == 7
    assert allowed[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 7, 11, 15]
    strided = sparse_transformer_pattern(16, "strided", 4, 1, causal=True)
    assert strided[13].nonzero().flatten().tolist() == [1, 5, 9, 10, 11, 12, 13]


# --- Longformer ----------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_longformer_with_every_token_global_equals_full_attention(causal):
    x, mask = padded_batch([10, 6], 10)
    mixer = LongformerAttention(D, H, window=1, n_global=10, causal=causal)
    reference = SoftmaxAttention(D, n_heads=H, causal=causal)
    reference.qkv.weight.data.copy_(mixer.qkv_global.weight)  # global queries use Q_g, K_g, V_g
    reference.out.weight.data.copy_(mixer.out.weight)
    assert_real_close(mixer(x, mask), reference(x, mask), mask)


@pytest.mark.parametrize("causal", [False, True])
def test_longformer_equals_window_plus_symmetric_global_reference(causal):
    n, window, n_global = 17, 2, 2
    x, mask = padded_batch([17, 12], n)
    mixer = LongformerAttention(D, H, window=window, n_global=n_global, causal=causal)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    pattern = ((i - j).abs() <= window) | (j < n_global) | (i < n_global)
    if causal:
        pattern = pattern & (j <= i)
    local = dense_reference(mixer, x, mask, pattern)
    b = x.shape[0]
    q, k, v = mixer.qkv_global(x).view(b, n, 3, H, -1).permute(2, 0, 3, 1, 4)
    rows = dense_heads(q, k, v, mask[:, None, None, :] & ((j <= i) if causal else True))
    global_rows = mixer.out(rows.transpose(1, 2).reshape(b, n, -1))
    expected = torch.cat([global_rows[:, :n_global], local[:, n_global:]], 1)
    assert_real_close(mixer(x, mask), expected, mask)


# --- BigBird -------------------------------------------------------------------------------


@pytest.mark.parametrize("dense_when_covered", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_whose_window_and_globals_cover_everything_equals_full_attention(
    causal, dense_when_covered
):
    # 3 blocks of 4: the first and last are global, the middle one's window covers all three.
    x, mask = padded_batch([12, 9], 12)
    mixer = BigBirdAttention(
        D, H, block_size=4, max_length=12, causal=causal, dense_when_covered=dense_when_covered
    )
    assert mixer.covers_every_key(mask)
    assert_real_close(mixer(x, mask), same_weights(mixer, causal)(x, mask), mask)
    assert mixer.ran_block_form == (not dense_when_covered)


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_computes_a_pattern_that_covers_every_key_as_full_attention(causal):
    # ListOps mini's shape in small: 4 blocks (16 positions in blocks of 4), r = 3. Each query
    # block's window, the two global blocks and at most r random candidates hold every block,
    # so the block form and the full-attention form give the same outputs and gradients.
    torch.manual_seed(5)
    x, mask = padded_batch([16, 13, 6, 1], 16)
    block = BigBirdAttention(
        D,
        H,
        block_size=4,
        n_random_blocks=3,
        max_length=16,
        causal=causal,
        dense_when_covered=False,
    )
    dense = BigBirdAttention(D, H, block_size=4, n_random_blocks=3, max_length=16, causal=causal)
    dense.load_state_dict(block.state_dict())
    assert dense.covers_every_key(mask)
    x_block = x.clone().requires_grad_()
    x_dense = x.clone().requires_grad_()
    out_block, out_dense = block(x_block, mask), dense(x_dense, mask)
    assert_real_close(out_dense, out_block, mask)
    weights = torch.randn_like(out_block) * mask[..., None]  # a loss on real positions only
    (out_block * weights).sum().backward()
    (out_dense * weights).sum().backward()
    torch.testing.assert_close(x_dense.grad, x_block.grad, atol=1e-5, rtol=1e-4)
    for name, param in block.named_parameters():
        torch.testing.assert_close(
            dict(dense.named_parameters())[name].grad, param.grad, atol=1e-5, rtol=1e-4
        )
    assert block.ran_block_form and block.backend == "torch.sdpa.blocked"
    assert not dense.ran_block_form and dense.backend is None


def test_bigbird_with_more_candidates_than_random_blocks_keeps_the_block_form():
    # 10 blocks of 4, r = 2: a query block has up to 7 candidates, so the pattern is sparse.
    x, mask = padded_batch([40, 29], 40)
    mixer = BigBirdAttention(D, H, block_size=4, n_random_blocks=2, max_length=40)
    assert not mixer.covers_every_key(mask)
    expected = dense_reference(mixer, x, mask, bigbird_pattern(mixer, mask))
    assert_real_close(mixer(x, mask), expected, mask)
    assert mixer.ran_block_form
    # The same layer on a batch of short sequences (3 blocks) covers every key.
    assert mixer.covers_every_key(mask[:, :12] & (torch.arange(12) < 10))


def bigbird_pattern(mixer, mask):
    """(B, H, L, L) from the mixer's own global and random block choices."""
    width = mixer.block_size
    n = mask.shape[1]
    chosen, chosen_ok = mixer.random_blocks(mask)
    is_global = mixer.global_blocks(mask).repeat_interleave(width, 1)  # (B, L)
    block = torch.arange(n) // width
    window = (block[:, None] - block[None, :]).abs() <= 1
    random = torch.zeros(mask.shape[0], mixer.n_heads, n, n, dtype=torch.bool)
    b, h, a, r = torch.nonzero(chosen_ok, as_tuple=True)
    for bb, hh, aa, cc in zip(b.tolist(), h.tolist(), a.tolist(), chosen[b, h, a, r].tolist()):
        random[bb, hh, aa * width : (aa + 1) * width, cc * width : (cc + 1) * width] = True
    pattern = window | random | is_global[:, None, None, :] | is_global[:, None, :, None]
    if mixer.causal:
        pattern = pattern & causal_mask(n)
    return pattern


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_equals_dense_reference_of_its_window_global_and_random_blocks(causal):
    n = 40  # 10 blocks of 4
    x, mask = padded_batch([40, 29, 13], n)
    mixer = BigBirdAttention(D, H, block_size=4, n_random_blocks=2, max_length=n, causal=causal)
    chosen, chosen_ok = mixer.random_blocks(mask)
    # A full sequence has r = 2 candidates for every block; causal: blocks 2 .. a-2 (0 and 1 are
    # global), so from block 5 on.
    assert chosen_ok[0, :, 5 if causal else 0 :].all()
    assert causal == (not chosen_ok[0, :, :4].all())
    assert mixer.global_blocks(mask)[1].nonzero().flatten().tolist() == (
        [0, 1] if causal else [0, 7]
    )
    expected = dense_reference(mixer, x, mask, bigbird_pattern(mixer, mask))
    assert_real_close(mixer(x, mask), expected, mask)


def test_bigbird_random_blocks_are_fixed_per_layer_and_ignore_padding():
    torch.manual_seed(3)
    first, second = (
        BigBirdAttention(D, H, block_size=4, max_length=64),
        BigBirdAttention(D, H, block_size=4, max_length=64),
    )
    assert not torch.equal(first.random_priority, second.random_priority), "layers share blocks"
    seeded = BigBirdAttention(D, H, block_size=4, max_length=64, seed=7)
    again = BigBirdAttention(D, H, block_size=4, max_length=64, seed=7)
    assert torch.equal(seeded.random_priority, again.random_priority)
    # A 30-position sequence picks the same random blocks alone or padded to 64.
    long_mask = torch.arange(64)[None, :] < 30
    short_mask = torch.ones(1, 32, dtype=torch.bool)
    short_mask[:, 30:] = False
    chosen_long, ok_long = seeded.random_blocks(long_mask)
    chosen_short, ok_short = seeded.random_blocks(short_mask)
    n_short = ok_short.shape[2]
    assert torch.equal(ok_long[:, :, :n_short], ok_short)
    assert torch.equal(chosen_long[:, :, :n_short][ok_short], chosen_short[ok_short])


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalAttention(D, H, block_size=4, dropout=0.5),
        lambda: SlidingWindowAttention(D, H, window=3, dropout=0.5),
        lambda: SparseTransformerAttention(D, H, stride=4, summary=2, dropout=0.5),
        lambda: LongformerAttention(D, H, window=3, dropout=0.5),
        lambda: BigBirdAttention(D, H, block_size=4, max_length=16, dropout=0.5),
    ],
)
def test_attention_dropout_acts_in_training_only(make):
    x, mask = padded_batch([16, 11], 16)
    mixer = make()
    with torch.no_grad():
        assert torch.equal(mixer.eval()(x, mask), mixer(x, mask))
        mixer.train()
        assert not torch.allclose(mixer(x, mask), mixer(x, mask))


def test_attend_gradients_through_both_outputs_are_those_of_plain_softmax_attention():
    """attend's fused backward (softmax's plus lse's gradient, in place) against autograd
    through softmax and logsumexp, with both outputs weighted, the mask held in the bias."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, n, 4, generator=g, dtype=torch.float64) for n in (6, 9, 9))
    allowed = torch.rand(2, 3, 6, 9, generator=g) > 0.3
    allowed[..., 2] = True
    bias = (torch.randn(6, 9, generator=g, dtype=torch.float64)).expand(2, 3, 6, 9)
    bias = bias.masked_fill(~allowed, MASKED)
    w_out = torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64)
    w_lse = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    part = attend(*leaves, None, bias)
    grads = torch.autograd.grad((part.out * w_out).sum() + (part.lse * w_lse).sum(), leaves)
    ref = [t.clone().requires_grad_() for t in (q, k, v)]
    scores = (ref[0] / 2) @ ref[1].transpose(-1, -2) + bias.masked_fill(~allowed, -math.inf)
    out, lse = torch.softmax(scores, -1) @ ref[2], scores.logsumexp(-1)
    torch.testing.assert_close(part.out.double(), out, rtol=1e-5, atol=1e-6)
    grads_ref = torch.autograd.grad((out * w_out).sum() + (lse * w_lse).sum(), ref)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)
