"""The `dropout` op (models/ops/dropout/) and the models' Dropout layer beyond the shared backend
tests (test_backends.py, where every form matches the reference, values and gradients).

Philox4x32-10 itself, in both forms, against Random123's published known-answer vectors
(kat_vectors of the Random123 distribution) and against Triton's tl.philox in the interpreter:
three implementations written apart. Then what makes it dropout: the keep rate, the scale, a
mask that the backward draws again, the same mask at any thread count, and the layer's contract
(nn.Dropout's): identity in evaluation, seeds from torch's generator."""

from __future__ import annotations

import ctypes
import math

import pytest
import torch

from models.layers.dropout import Dropout, dropout
from models.ops import cpu_build
from models.ops.dropout import dropout as dropout_op
from models.ops.dropout.reference import keep_mask, keep_threshold, philox4x32
from tests.ops.compiled import compiled_kernel

# Random123 kat_vectors, philox4x32 with 10 rounds: counter (4 words), key (2 words) -> output.
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("dropout_cpu", "dropout")


def test_reference_philox_gives_random123s_known_answers():
    for counter, key, expected in KNOWN_ANSWERS:
        words = philox4x32(counter, key)
        assert tuple(int(w) for w in words) == expected


def test_compiled_philox_gives_random123s_known_answers(kernel):
    counters = torch.tensor([c for c, _, _ in KNOWN_ANSWERS], dtype=torch.int64).to(torch.int32)
    keys = torch.tensor([k for _, k, _ in KNOWN_ANSWERS], dtype=torch.int64).to(torch.int32)
    out = torch.zeros(len(KNOWN_ANSWERS), 4, dtype=torch.int32)
    function = kernel.library.philox4x32_10
    function.restype = ctypes.c_int
    status = function(
        *(ctypes.c_void_p(t.data_ptr()) for t in (counters, keys, out)),
        ctypes.c_int64(len(KNOWN_ANSWERS)),
    )
    assert status == 0
    got = [tuple(int(w) & 0xFFFFFFFF for w in row) for row in out.tolist()]
    assert got == [expected for _, _, expected in KNOWN_ANSWERS]


def test_reference_philox_equals_tritons_in_the_interpreter():
    triton = pytest.importorskip("triton")
    import triton.language as tl

    @triton.jit
    def words_kernel(out, seed, N: tl.constexpr):
        block = tl.arange(0, N)
        zero = block * 0
        c0, c1, c2, c3 = tl.philox(seed, block.to(tl.uint32), zero.to(tl.uint32), zero, zero)
        for w, word in enumerate((c0, c1, c2, c3)):
            tl.store(out + block * 4 + w, word.to(tl.int32, bitcast=True))

    seed = 0x0123_4567_89AB_CDEF
    out = torch.zeros(64, 4, dtype=torch.int32)
    words_kernel[(1,)](out, seed, N=64)
    blocks = torch.arange(64)
    expected = torch.stack(philox4x32((blocks, 0, 0, 0), (seed & 0xFFFFFFFF, seed >> 32)), 1)
    assert torch.equal(out.to(torch.int64) & 0xFFFFFFFF, expected)


def test_mask_follows_the_philox_words_element_by_element():
    seed, p = 2**40 + 7, 0.25
    mask = keep_mask(10, seed, p)
    blocks = torch.arange(3)
    words = torch.stack(philox4x32((blocks, 0, 0, 0), (7, 2**8)), 1).flatten()[:10]
    assert torch.equal(mask, words >= math.ceil(p * 2**32))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_scale_and_independence(kernel, backend, p):
    n = 1 << 20
    x = torch.ones(n, dtype=torch.float64)
    y = dropout_op(x, p, 99, backend=backend)
    kept = y != 0
    assert set(torch.unique(y).tolist()) == {0.0, 1.0 / (1.0 - p)}
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * sigma
    # each of the four words of a block, and pairs of neighbours, behave as independent draws
    for word in range(4):
        rate = kept[word::4].double().mean().item()
        assert abs(rate - (1 - p)) < 5 * sigma * 2
    both = (kept[:-1] & kept[1:]).double().mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 / n)


def test_backward_applies_the_forwards_mask_and_scale(kernel):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4, 1001, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    y = dropout_op(x, 0.3, 5, backend="cpu")
    weights = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    assert torch.equal(grad, weights * ((y != 0).double() * (1 / 0.7)))
    assert torch.autograd.gradcheck(lambda t: dropout_op(t, 0.3, 5, backend="cpu"), (x[:, :50],))


def test_the_mask_does_not_depend_on_the_number_of_threads(kernel):
    x = torch.randn(7, 50_003)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = dropout_op(x, 0.1, 3, backend="cpu")
        torch.set_num_threads(2)
        two = dropout_op(x, 0.1, 3, backend="cpu")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_limits_and_special_values(kernel):
    x = torch.tensor([1.0, float("nan"), float("inf"), -2.0] * 8)
    kept_all = dropout_op(x, 0.0, 1, backend="cpu")
    torch.testing.assert_close(kept_all, x, rtol=0, atol=0, equal_nan=True)
    zeros = dropout_op(torch.randn(1000), 1.0, 1, backend="cpu")
    assert torch.equal(zeros, torch.zeros(1000))
    for backend in ("reference", "cpu"):
        y = dropout_op(x, 0.5, 11, backend=backend)
        dropped = y[::4] == 0
        assert torch.isnan(y[1::4][dropped]).all()  # NaN stays NaN, as in torch's dropout
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dropout_op(x, 1.5, 1, backend="cpu")
    with pytest.raises(ValueError, match="seed"):
        dropout_op(x, 0.5, -1, backend="cpu")
    assert keep_threshold(1.0) == 2**32


def test_other_dtypes_and_layouts(kernel):
    x = torch.randn(6, 40, dtype=torch.float64)
    transposed = dropout_op(x.t(), 0.2, 8, backend="cpu")
    assert torch.equal(transposed, dropout_op(x.t().contiguous(), 0.2, 8, backend="reference"))
    half = dropout_op(x.to(torch.bfloat16), 0.2, 8, backend="cpu")
    assert half.dtype == torch.bfloat16
    expected = dropout_op(x.to(torch.bfloat16).float(), 0.2, 8, backend="reference")
    assert torch.equal(half, expected.to(torch.bfloat16))


def test_layer_contract():
    layer = Dropout(0.2)
    x = torch.randn(4, 300)
    layer.eval()
    assert layer(x) is x
    layer.train()
    torch.manual_seed(5)
    first, second = layer(x), layer(x)
    assert not torch.equal(first, second)  # a new seed every call
    torch.manual_seed(5)
    assert torch.equal(layer(x), first)  # torch's generator fixes the masks
    assert ((first == 0) | torch.isclose(first, x / 0.8)).all()
    assert Dropout(0.0)(x) is x
    assert "p=0.2" in repr(layer)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(-0.1)
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 2.0)


def test_layer_uses_the_op_on_cpu_and_the_record_says_which_form():
    from models.ops import dispatch

    dispatch.reset_report()
    Dropout(0.1).train()(torch.randn(3, 8))
    ran = dispatch.report(["dropout"])["dropout"]
    assert ran in ("cpu", "reference") or ran.startswith("reference (fallback from cpu")


def test_layer_runs_torchs_dropout_where_no_kernel_can_be_built(monkeypatch):
    monkeypatch.setattr(cpu_build, "build_problem", lambda: "no C++ compiler (c++ not found)")
    x = torch.randn(5, 64)
    torch.manual_seed(3)
    expected = torch.nn.functional.dropout(x, 0.3, training=True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3), expected)
