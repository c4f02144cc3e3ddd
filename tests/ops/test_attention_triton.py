"""The Triton attention kernels beyond what tests/ops/test_backends.py checks: that key tiles
outside the pattern are never read (forward, dQ, dK/dV), head dims 64 / 128 / not powers of two,
dropout (a Philox mask redrawn in the backward, checked against a reference that applies the
same mask), bf16, rows with no allowed key, strided inputs, and the dispatcher's checks.

On CPU the kernels run in Triton's interpreter (tests/conftest.py), natively on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from models.ops.attention import OP, AttentionPattern
from models.ops.attention.triton import (
    TileSizes,
    attention_triton,
    dropout_keep_mask,
)
from tests.ops.compare import TOLERANCE, relative_rmse

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TILE = 16
SMALL_TILES = TileSizes((TILE, TILE), (TILE, TILE), (TILE, TILE), stages=(1, 1, 1))


def _inputs(batch, heads, length, e, ev, seed, padded=True):
    """float64 q, k, v (B, H, L, E|Ev) and key_valid (B, L): row 0 full, the others padded."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, heads, length, e, generator=g, dtype=torch.float64) for _ in "qk")
    v = torch.randn(batch, heads, length, ev, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (batch,), generator=g) if padded else None
    valid = torch.ones(batch, length, dtype=torch.bool)
    if padded:
        lengths[0] = length
        valid = torch.arange(length)[None, :] < lengths[:, None]
    return q, k, v, valid


def _reference(q, k, v, valid, pattern, keep=None, dropout=0.0):
    """softmax over the allowed real keys, in float64; with `keep` (B, H, L, L) bool, the
    weights are multiplied by keep / (1 - dropout): the reference of a given dropout mask."""
    allowed = pattern.allowed(q.shape[2], q.device) & valid[:, None, None, :]
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    if keep is not None:
        weights = weights * keep / (1.0 - dropout)
    return weights @ v


def _run(fn, q, k, v, grad_out, dtype, wanted="qkv"):
    """fn's output and gradients (q, k, v) for upstream gradient grad_out, inputs cast to
    dtype on DEVICE; everything returned as float64 on CPU. Gradients of inputs not in
    `wanted` are not computed (None)."""
    leaves = [
        t.detach().to(DEVICE, dtype).requires_grad_(name in wanted)
        for name, t in zip("qkv", (q, k, v))
    ]
    out = fn(*leaves)
    out.backward(grad_out.to(DEVICE, out.dtype))
    grads = [None if x.grad is None else x.grad.detach().double().cpu() for x in leaves]
    return [out.detach().double().cpu(), *grads]


def _compare(pattern, q, k, v, valid, dtype=torch.float32, **options):
    """Relative RMSE of the kernel against the float64 reference: output at real queries, and
    the gradients of q, k, v for a random upstream gradient on real queries."""
    query = valid[:, None, :, None].double()
    grad_out = torch.randn(*q.shape[:3], v.shape[-1], dtype=torch.float64) * query
    kernel = _run(
        lambda *t: attention_triton(*t, valid.to(DEVICE), pattern, **options),
        q, k, v, grad_out, dtype,
    )  # fmt: skip
    reference = _run(lambda *t: _reference(*t, valid, pattern), q, k, v, grad_out, torch.float64)
    kernel[0], reference[0] = kernel[0] * query, reference[0] * query
    names = ("output", "dq", "dk", "dv")
    return {name: relative_rmse(a, b) for name, a, b in zip(names, kernel, reference)}


def _assert_close(errors, dtype=torch.float32):
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE[dtype], f"{worst}: relative RMSE {errors[worst]:.2e}"


# --- key tiles outside the pattern are never read ---------------------------------------------

# Each case runs the kernels once per tile; in the interpreter the less telling ones are slow.
SKIPPING = [
    # a window with an unmasked inside, and global keys over two tiles
    pytest.param(AttentionPattern(window=20, n_global=18), id="wide_window_global"),
    # blocks narrower than a tile, with the block before
    pytest.param(AttentionPattern(block_size=8, look_backward=True), id="blocks_back"),
    # blocks wider than a tile and not aligned with the tiles, causal
    pytest.param(AttentionPattern(causal=True, block_size=24), id="causal_blocks"),
    pytest.param(AttentionPattern(window=6), id="window", marks=pytest.mark.slow),
    pytest.param(
        AttentionPattern(causal=True, window=5, n_global=3),
        id="causal_window_global",
        marks=pytest.mark.slow,
    ),
    pytest.param(AttentionPattern(causal=True), id="causal", marks=pytest.mark.slow),
]
LENGTH = 75  # 5 tiles of 16, the last one partial


def _needed_tiles(pattern, length):
    """needed[t, s]: some query of query tile t may see some key of key tile s."""
    n = -(-length // TILE)
    allowed = torch.zeros(n * TILE, n * TILE, dtype=torch.bool)
    allowed[:length, :length] = pattern.allowed(length, torch.device("cpu"))
    return allowed.view(n, TILE, n, TILE).any(3).any(1)


def _tile(t, length):
    return slice(t * TILE, min((t + 1) * TILE, length))


@pytest.mark.filterwarnings("ignore:All-NaN slice")  # the interpreter, on other tiles' rows
@pytest.mark.parametrize("pattern", SKIPPING)
def test_query_tiles_read_only_the_key_tiles_they_need(pattern):
    """NaN in every key and value of the key tiles a query tile does not need: had its forward
    or dQ program loaded one, a masked weight times NaN would make its rows NaN."""
    needed = _needed_tiles(pattern, LENGTH)
    assert not needed.all(), "the pattern must leave some tile out, or this checks nothing"
    q, k, v, valid = _inputs(1, 1, LENGTH, 8, 8, seed=3, padded=False)
    kernel = lambda *x: attention_triton(*x, valid.to(DEVICE), pattern, tiles=SMALL_TILES)  # noqa: E731
    reference = lambda *x: _reference(*x, valid, pattern)  # noqa: E731
    for t in range(needed.shape[0]):
        rows = _tile(t, LENGTH)
        grad_out = torch.zeros(*q.shape[:3], v.shape[-1], dtype=torch.float64)
        grad_out[:, :, rows] = torch.randn(*grad_out[:, :, rows].shape, dtype=torch.float64)
        poisoned_k, poisoned_v = k.clone(), v.clone()
        for s in torch.nonzero(~needed[t]).flatten().tolist():
            poisoned_k[:, :, _tile(s, LENGTH)] = float("nan")
            poisoned_v[:, :, _tile(s, LENGTH)] = float("nan")
        out, dq, _, _ = _run(kernel, q, poisoned_k, poisoned_v, grad_out, torch.float32, "q")
        ref_out, ref_dq, _, _ = _run(reference, q, k, v, grad_out, torch.float64, "q")
        assert out[:, :, rows].isfinite().all() and dq[:, :, rows].isfinite().all(), f"tile {t}"
        assert relative_rmse(out[:, :, rows], ref_out[:, :, rows]) < 1e-4
        assert relative_rmse(dq[:, :, rows], ref_dq[:, :, rows]) < 1e-4


@pytest.mark.filterwarnings("ignore:All-NaN slice")
@pytest.mark.parametrize("pattern", SKIPPING)
def test_key_tiles_read_only_the_query_tiles_that_see_them(pattern):
    """NaN in the queries and upstream gradients of the query tiles that cannot see a key tile:
    had its dK/dV program loaded one, its rows would be NaN. Key tiles holding a global key are
    seen by every query tile (and must visit them all, as the gradients show)."""
    needed = _needed_tiles(pattern, LENGTH)
    q, k, v, valid = _inputs(1, 1, LENGTH, 8, 8, seed=4, padded=False)
    kernel = lambda *x: attention_triton(*x, valid.to(DEVICE), pattern, tiles=SMALL_TILES)  # noqa: E731
    reference = lambda *x: _reference(*x, valid, pattern)  # noqa: E731
    for s in range(needed.shape[1]):
        keys = _tile(s, LENGTH)
        grad_out = torch.randn(*q.shape[:3], v.shape[-1], dtype=torch.float64)
        poisoned_q, poisoned_grad = q.clone(), grad_out.clone()
        for t in torch.nonzero(~needed[:, s]).flatten().tolist():
            poisoned_q[:, :, _tile(t, LENGTH)] = float("nan")
            poisoned_grad[:, :, _tile(t, LENGTH)] = float("nan")
        _, _, dk, dv = _run(kernel, poisoned_q, k, v, poisoned_grad, torch.float32, "kv")
        _, _, ref_dk, ref_dv = _run(reference, q, k, v, grad_out, torch.float64, "kv")
        assert dk[:, :, keys].isfinite().all() and dv[:, :, keys].isfinite().all(), f"tile {s}"
        assert relative_rmse(dk[:, :, keys], ref_dk[:, :, keys]) < 1e-4
        assert relative_rmse(dv[:, :, keys], ref_dv[:, :, keys]) < 1e-4


def test_a_nan_in_a_tile_that_is_read_does_reach_the_output():
    """The premise of the two tests above: a masked key in a tile that is read still poisons
    its query tile (0 * NaN in P @ V), so a clean output proves the tile was not read."""
    pattern = AttentionPattern(window=2)
    q, k, v, valid = _inputs(1, 1, 32, 8, 8, seed=5, padded=False)
    v[:, :, 10] = float("nan")  # key 10 is outside every window of queries 0..7 but in their tile
    out = attention_triton(q.float(), k.float(), v.float(), valid, pattern, tiles=SMALL_TILES)
    assert out[:, :, :8].isnan().any()


# --- shapes, dtypes, layouts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "e, ev, pattern",
    [
        (64, 64, AttentionPattern(causal=True, block_size=20, look_backward=True, n_global=5)),
        (40, 24, AttentionPattern(causal=True, window=9, n_global=2)),
        (128, 100, AttentionPattern(block_size=16, look_backward=True)),
    ],
    ids=["64-causal_blocks_back_global", "40-24-causal_window_global", "128-100-blocks_back"],
)
def test_head_dims(e, ev, pattern):
    q, k, v, valid = _inputs(2, 2, 70, e, ev, seed=e)
    _assert_close(_compare(pattern, q, k, v, valid))


def test_bfloat16():
    q, k, v, valid = _inputs(2, 3, 90, 32, 32, seed=6)
    pattern = AttentionPattern(window=12, n_global=4)
    _assert_close(_compare(pattern, q, k, v, valid, dtype=torch.bfloat16), torch.bfloat16)


def test_strided_inputs():
    """q, k, v as views of a (B, L, H, 3E) projection, as the mixers make them."""
    batch, length, heads, e = 2, 50, 3, 16
    fused = torch.randn(batch, length, heads, 3 * e, dtype=torch.float64)
    q, k, v = (t.transpose(1, 2) for t in fused.split(e, dim=-1))
    assert not q.is_contiguous()
    valid = torch.ones(batch, length, dtype=torch.bool)
    valid[1, 30:] = False
    _assert_close(_compare(AttentionPattern(causal=True), q, k, v, valid))


def test_query_with_no_allowed_key_gets_zeros_and_finite_gradients():
    """Row 1's real keys end at 10; with a window of 3, its queries from 14 on see none."""
    pattern = AttentionPattern(window=3)
    q, k, v, valid = _inputs(2, 1, 40, 8, 8, seed=7, padded=False)
    valid[1, 10:] = False
    leaves = [t.float().requires_grad_() for t in (q, k, v)]
    out = attention_triton(*leaves, valid, pattern, tiles=SMALL_TILES)
    out.sum().backward()
    assert (out[1, :, 14:] == 0).all()
    assert all(t.grad.isfinite().all() for t in leaves)
    _assert_close(_compare(pattern, q, k, v, valid, tiles=SMALL_TILES))


# --- dropout ----------------------------------------------------------------------------------


def test_dropout_mask_is_set_by_the_seed():
    q, k, v, valid = (t.float().to(DEVICE) for t in _inputs(2, 1, 48, 8, 8, seed=8))
    pattern = AttentionPattern(window=20)
    first = attention_triton(q, k, v, valid, pattern, 0.3, seed=11)
    again = attention_triton(q, k, v, valid, pattern, 0.3, seed=11)
    other = attention_triton(q, k, v, valid, pattern, 0.3, seed=12)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    # The mask is a function of (seed, head, query, key), not of how the work is tiled.
    retiled = attention_triton(q, k, v, valid, pattern, 0.3, seed=11, tiles=SMALL_TILES)
    torch.testing.assert_close(first, retiled, rtol=1e-5, atol=1e-5)
    # Without a seed, torch's generator draws one: torch.manual_seed repeats it.
    torch.manual_seed(0)
    drawn = attention_triton(q, k, v, valid, pattern, 0.3)
    torch.manual_seed(0)
    torch.testing.assert_close(drawn, attention_triton(q, k, v, valid, pattern, 0.3))


def test_dropout_keeps_one_minus_p():
    keep = dropout_keep_mask(seed=5, batch=2, heads=2, length=64, dropout=0.25, device=DEVICE)
    assert keep.shape == (2, 2, 64, 64)
    assert abs(keep.float().mean().item() - 0.75) < 0.02  # 16384 draws: std 0.0034
    assert not torch.equal(keep[0, 0], keep[0, 1])  # heads draw apart


@pytest.mark.parametrize(
    "pattern",
    [AttentionPattern(causal=True), AttentionPattern(window=6, n_global=2)],
    ids=["causal", "window_global"],
)
def test_dropout_matches_the_reference_with_the_same_mask(pattern):
    """Forward and every gradient against float64 softmax * keep / (1 - p) @ v, with `keep`
    drawn by dropout_keep_mask for the same seed: the backward redraws the forward's mask."""
    batch, heads, length, p, seed = 2, 1, 40, 0.2, 123
    q, k, v, valid = _inputs(batch, heads, length, 8, 8, seed=9)
    keep = dropout_keep_mask(seed, batch, heads, length, p, device=DEVICE).cpu()
    query = valid[:, None, :, None].double()
    grad_out = torch.randn(batch, heads, length, 8, dtype=torch.float64) * query
    kernel = _run(
        lambda *t: attention_triton(*t, valid.to(DEVICE), pattern, p, seed=seed, tiles=SMALL_TILES),
        q, k, v, grad_out, torch.float32,
    )  # fmt: skip
    reference = _run(
        lambda *t: _reference(*t, valid, pattern, keep, p), q, k, v, grad_out, torch.float64
    )
    kernel[0], reference[0] = kernel[0] * query, reference[0] * query
    names = ("output", "dq", "dk", "dv")
    _assert_close({n: relative_rmse(a, b) for n, a, b in zip(names, kernel, reference)})


# --- dispatch ---------------------------------------------------------------------------------


def test_the_dispatcher_learns_what_the_kernels_do_not_take():
    available = OP.backends["triton"].available
    q = torch.zeros(1, 1, 4, 8, device=DEVICE)
    valid = torch.ones(1, 4, dtype=torch.bool, device=DEVICE)
    assert available([q, q, q, valid]) is None
    assert "float64" in available([q.double(), q.double(), q.double(), valid])
    wide = torch.zeros(1, 1, 4, 256, device=DEVICE)
    assert "head dims" in available([wide, wide, wide, valid])
    assert OP.auto["cuda"][0] == "triton"
