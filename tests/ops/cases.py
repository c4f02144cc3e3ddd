"""Inputs for every op of models/ops, at any length and dtype: what the backend tests feed to each
backend and to the reference. Each case returns (args, options): the op's positional arguments
(float or complex tensors that need gradients have requires_grad set) and keyword options.

Shapes are small and awkward on purpose (heads and widths that are not powers of two, groups,
padding, initial states) so that a kernel's masking and tiling are exercised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from models.ops.attention import AttentionPattern
from models.ssm.hippo import legs_diagonal_plus_low_rank

Case = Callable[[int, torch.dtype, torch.Generator], tuple[tuple, dict]]


def _randn(generator, *shape, dtype, scale=1.0, grad=True):
    x = torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
    return x.to(dtype).requires_grad_(grad)


def _complex(generator, *shape, dtype, scale=1.0):
    real = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    parts = [torch.randn(*shape, generator=generator, dtype=torch.float64) * scale for _ in "ri"]
    return torch.complex(*parts).to(torch.complex128 if real == torch.float64 else torch.complex64)


def _lengths(generator, batch: int, length: int) -> torch.Tensor:
    """Real lengths per row: the full length in row 0, shorter (>= 1) in the others."""
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    return lengths


def selective_scan(length, dtype, g):
    b, d, n = 2, 5, 3
    u = _randn(g, b, length, d, dtype=dtype)
    delta = F.softplus(_randn(g, b, length, d, dtype=dtype, grad=False) - 1).requires_grad_()
    A = (-torch.exp(_randn(g, d, n, dtype=dtype, scale=0.5, grad=False))).requires_grad_()
    B, C = _randn(g, b, length, n, dtype=dtype), _randn(g, b, length, n, dtype=dtype)
    D = _randn(g, d, dtype=dtype)
    h0 = _randn(g, b, d, n, dtype=dtype)
    return (u, delta, A, B, C, D, h0), {"chunk_size": 16}


def ssd(length, dtype, g):
    b, h, p, groups, n = 2, 4, 3, 2, 5
    x = _randn(g, b, length, h, p, dtype=dtype)
    log_a = (-F.softplus(_randn(g, b, length, h, dtype=dtype, grad=False))).requires_grad_()
    B, C = (_randn(g, b, length, groups, n, dtype=dtype) for _ in "BC")
    h0 = _randn(g, b, h, p, n, dtype=dtype)
    return (x, log_a, B, C, h0), {"chunk_size": 16}


def ssd_scaled_with_skip(length, dtype, g):
    """Mamba-2's use: the input scaled by a step dt per head and position, log_a = dt A, a skip
    D per head; the gradient of every input (log_a = dt A enters as a leaf of its own)."""
    (x, _, B, C, h0), options = ssd(length, dtype, g)
    heads = x.shape[2]
    dt = F.softplus(_randn(g, x.shape[0], length, heads, dtype=dtype, grad=False) - 1)
    dt.requires_grad_()
    A = -torch.exp(_randn(g, heads, dtype=dtype, scale=0.5, grad=False))
    D = _randn(g, heads, dtype=dtype)
    return (x, dt * A, B, C, h0, dt, D), options


def _gated(length, dtype, g, decay: bool, bonus: bool):
    b, h, k, v = 2, 3, 5, 6
    q, key = _randn(g, b, h, length, k, dtype=dtype), _randn(g, b, h, length, k, dtype=dtype)
    values = _randn(g, b, h, length, v, dtype=dtype)
    log_decay = None
    if decay:
        raw = _randn(g, b, h, length, k, dtype=dtype, grad=False)
        log_decay = (F.logsigmoid(raw) / 4).requires_grad_()
    u = _randn(g, h, k, dtype=dtype) if bonus else None
    h0 = _randn(g, b, h, k, v, dtype=dtype)
    return (q, key, values, log_decay, u, h0), {"chunk_size": 16}


def gla(length, dtype, g):
    return _gated(length, dtype, g, decay=True, bonus=False)


def rwkv6(length, dtype, g):
    return _gated(length, dtype, g, decay=True, bonus=True)


def linear_attention(length, dtype, g):
    return _gated(length, dtype, g, decay=False, bonus=False)


def favor(length, dtype, g):
    """Performer's FAVOR+: q, k at the scale they reach after d^-1/4 (exponents of a few units),
    padded keys in every row but the first, one row with a single real key."""
    b, h, d, m, e = 3, 2, 6, 20, 5
    q, k = (_randn(g, b, h, length, d, dtype=dtype, scale=0.6) for _ in "qk")
    v = _randn(g, b, h, length, e, dtype=dtype)
    projection = torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype)
    lengths = _lengths(g, b, length)
    lengths[-1] = 1
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return (q, k, v, projection, mask, torch.finfo(torch.float32).tiny), {}


def dropout(length, dtype, g):
    """Dropout at LRA's rate on (B, L, D) activations, with a seed above 2^32 (both key words
    used) and a length that is not a multiple of 4 (a partial Philox block at the end)."""
    x = _randn(g, 3, length, 5, dtype=dtype)
    return (x, 0.1, 0x1234_5678_9ABC), {}


def _causal_conv1d(activation, masked=False):
    """Mamba's conv: width 4 (longer than the shortest length), channels not a multiple of the
    vector width; masked: padding at the end of rows (forward direction) and at their start (a
    reversed row, as the bidirectional mixers' backward direction sees it)."""

    def case(length, dtype, g):
        x = _randn(g, 3, length, 37, dtype=dtype)
        weight = _randn(g, 37, 4, dtype=dtype, scale=0.5)
        bias = _randn(g, 37, dtype=dtype)
        if not masked:
            return (x, weight, bias, activation), {}
        mask = torch.arange(length)[None, :] < _lengths(g, 3, length)[:, None]
        mask[2] = mask[2].flip(0)
        return (x, weight, bias, activation, mask), {}

    return case


def _attention(pattern: AttentionPattern) -> Case:
    def case(length, dtype, g):
        b, h, e = 3, 2, 8
        q, k, v = (_randn(g, b, h, length, e, dtype=dtype) for _ in "qkv")
        valid = torch.arange(length)[None, :] < _lengths(g, b, length)[:, None]
        return (q, k, v, valid, pattern, 0.0), {}

    return case


def vandermonde(length, dtype, g):
    c, h, n = 2, 3, 4
    coefficients = _complex(g, c, h, n, dtype=dtype).requires_grad_()
    log_lambda = torch.complex(
        -torch.rand(h, n, generator=g, dtype=torch.float64) * 0.5,
        torch.randn(h, n, generator=g, dtype=torch.float64),
    )
    log_lambda = log_lambda.to(coefficients.dtype).requires_grad_()
    shift = _randn(g, h, n, dtype=dtype, scale=0.1)
    return (coefficients, log_lambda, length, shift), {}


def dplr_kernel(length, dtype, g):
    h, n = 3, 4
    lam, p, b, _ = legs_diagonal_plus_low_rank(2 * n)
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    noise = lambda: 0.1 * _complex(g, h, n, dtype=dtype)  # noqa: E731
    lam, p, b = (x.to(complex_dtype) + noise() for x in (lam, p, b))
    lam = torch.complex(lam.real.clamp(max=-0.05), lam.imag)
    c_tilde = _complex(g, 2, h, n, dtype=dtype)
    dt = torch.tensor([0.01, 0.1, 0.7], dtype=dtype)
    leaves = [t.requires_grad_() for t in (dt, lam, p, b, c_tilde)]
    return (*leaves, length), {}


def fft_conv(length, dtype, g):
    u = _randn(g, 2, 3, length, dtype=dtype)
    k_forward, k_backward = _randn(g, 3, length, dtype=dtype), _randn(g, 3, length, dtype=dtype)
    return (u, k_forward, k_backward), {}


def _diagonal(reverse: bool) -> Case:
    def case(length, dtype, g):
        n = 5
        log_lambda = torch.complex(
            -torch.rand(n, generator=g, dtype=torch.float64) * 0.3,
            torch.rand(n, generator=g, dtype=torch.float64) * 3,
        )
        v = _complex(g, 2, length, n, dtype=dtype)
        h0 = _complex(g, 2, n, dtype=dtype)
        log_lambda = log_lambda.to(v.dtype)
        leaves = [t.requires_grad_() for t in (log_lambda, v, h0)]
        return (*leaves, reverse), {"chunk": 16}

    return case


def _lsh_bias(rounds: int, causal: bool) -> Case:
    """Reformer's buckets and sort order: 3 rows x 2 heads, chunks of 8 (the length rounded up to
    whole chunks), 4 buckets so that pairs share buckets often, padding (bucket 4) at the end of
    rows 1 and 2."""

    def case(length, dtype, g):
        chunk, n_buckets = 8, 4
        padded = -(-length // chunk) * chunk
        buckets = torch.randint(0, n_buckets, (3, 2, rounds, padded), generator=g)
        real = torch.arange(padded)[None, :] < _lengths(g, 3, padded)[:, None]
        buckets = buckets.masked_fill(~real[:, None, None, :], n_buckets)
        order = (buckets * padded + torch.arange(padded)).argsort(-1)
        return (buckets, order, n_buckets, chunk, causal), {}

    return case


# op name -> {case name: case}. Every backend of the op runs every case.
CASES: dict[str, dict[str, Case]] = {
    "selective_scan": {"mamba": selective_scan},
    "ssd": {"grouped": ssd, "mamba2": ssd_scaled_with_skip},
    "gated_linear_attention": {"gla": gla, "rwkv6": rwkv6, "no_decay": linear_attention},
    "attention": {
        "full": _attention(AttentionPattern()),
        "causal": _attention(AttentionPattern(causal=True)),
        "window": _attention(AttentionPattern(window=5)),
        "window_global": _attention(AttentionPattern(window=5, n_global=2)),
        "causal_window_global": _attention(AttentionPattern(causal=True, window=4, n_global=3)),
        "blocks": _attention(AttentionPattern(block_size=8, look_backward=True)),
        "causal_blocks": _attention(AttentionPattern(causal=True, block_size=7)),
    },
    "favor": {"padded": favor},
    "dropout": {"activations": dropout},
    "causal_conv1d": {
        "silu": _causal_conv1d("silu"),
        "linear": _causal_conv1d(None),
        "silu_masked": _causal_conv1d("silu", masked=True),
    },
    "vandermonde": {"shifted": vandermonde},
    "dplr_kernel": {"legs": dplr_kernel},
    "fft_conv": {"bidirectional": fft_conv},
    "diagonal_recurrence": {"forward": _diagonal(False), "reverse": _diagonal(True)},
    "lsh_bias": {
        "two_rounds": _lsh_bias(2, False),
        "one_round": _lsh_bias(1, False),
        "three_rounds_causal": _lsh_bias(3, True),
    },
}


def query_weights(op: str, args: tuple) -> torch.Tensor | None:
    """For the attention op: 1 at real query positions, 0 at padded ones (whose output is
    unspecified), shaped to weigh the (B, H, L, E) output; None for other ops."""
    if op != "attention":
        return None
    valid = args[3]
    return valid[:, None, :, None].to(args[0].dtype)
