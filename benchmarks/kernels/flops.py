"""FLOPs of one forward call of each op: the one place the benchmark's TFLOP/s come from.

Conventions:
- A multiply-add counts 2 FLOPs; a complex multiply-add 8 (4 real multiplies, 4 adds).
- The count is the op's useful work, the same for every backend of the op (so TFLOP/s compare
  backends like their times do), not what a form actually executes: a chunked scan does more
  arithmetic than the recurrence it computes, flash attention recomputes in its backward.
  Scans are counted as their step-by-step recurrence, attention as its two matrix products,
  FFT convolutions by the usual 5 N log2 N per complex FFT of size N (2.5 N log2 N for a real
  one), exponentials and other transcendental functions as 1.
- Forward + backward counts 3 x forward (the backward of a product costs two products).
- None: no count that means much (S4's Cauchy kernel); the report then says n/a.
"""

from __future__ import annotations

import math

BACKWARD_FACTOR = 2.0  # backward FLOPs per forward FLOP


def attention(batch: int, heads: int, length: int, head_dim: int) -> float:
    """Full bidirectional softmax attention: Q K^T and P V, 2 L^2 E multiply-adds per head."""
    return 4.0 * batch * heads * length * length * head_dim


def selective_scan(batch: int, length: int, channels: int, state: int) -> float:
    """Per (b, l, d, n): exp(delta A) (2), delta B u (2), h = dA h + dBu (2), C h (2), and
    D u per (b, l, d) is negligible: 9 with the exponential counted as 1 (Mamba's count)."""
    return 9.0 * batch * length * channels * state


def ssd(batch: int, length: int, heads: int, head_dim: int, state: int) -> float:
    """Per (b, l, h, p, n): decay the state (1), add x B^T (2), read out with C (2)."""
    return 5.0 * batch * length * heads * head_dim * state


def gated_linear_attention(batch: int, heads: int, length: int, key: int, value: int) -> float:
    """Per (b, h, l, k, v): decay the state (1), add k^T v (2), read out with q (2)."""
    return 5.0 * batch * heads * length * key * value


def favor(batch: int, heads: int, length: int, dim: int, features: int, value: int) -> float:
    """Per (b, h, l): the random features of q and k (2 m d multiply-adds each, an exponential
    per feature), S = phi(k)^T v and the read-out phi(q)^T S (m e multiply-adds each), the
    normaliser's sum and product (m each)."""
    return batch * heads * length * features * (4.0 * dim + 4.0 * value + 6.0)


def causal_conv1d(batch: int, length: int, channels: int, width: int) -> float:
    """Per (b, l, c): `width` multiply-adds and the bias, the SiLU's exponential and 3 more."""
    return batch * length * channels * (2.0 * width + 1.0 + 4.0)


def lsh_bias(batch: int, heads: int, rounds: int, length: int, chunk: int) -> float:
    """One per scored pair (B H R L queries x 2W keys): a compare, and the bias written."""
    return float(batch * heads * rounds * length * 2 * chunk)


def dropout(elements: int) -> float:
    """Per element: its random word, a compare and a multiply, counted as 1 (the useful work is
    the mask; Philox's ~10 integer operations per word are the form's cost, not the op's)."""
    return float(elements)


def vandermonde(channels: int, copies: int, modes: int, length: int) -> float:
    """sum_n C_n exp(l log_lambda_n - shift_n): one complex multiply-add per (c, h, n, l)."""
    return 8.0 * channels * copies * modes * length


def fft_conv(batch: int, channels: int, length: int, bidirectional: bool) -> float:
    """Zero-padded FFT convolution over N = 2L: per (b, h) row a real FFT of u, the spectral
    product (N/2 + 1 complex multiplies) and a real inverse FFT; per h one real FFT of the kernel
    (the backward kernel rides in the same FFT)."""
    n = 2 * length
    real_fft = 2.5 * n * math.log2(n)
    rows = batch * channels
    return rows * (2 * real_fft + 6 * (n // 2 + 1)) + channels * real_fft


def diagonal_recurrence(batch: int, length: int, modes: int) -> float:
    """x_t = lambda x_{t-1} + v_t, complex: a complex multiply (6) and add (2) per (b, l, n)."""
    return 8.0 * batch * length * modes


def dplr_kernel(*_shape) -> None:
    """S4's Cauchy kernel: its cost depends on the form (Cauchy sums at L roots, Woodbury, an
    inverse FFT) more than on a model count; not counted."""
    return None


def forward_backward(forward: float | None) -> float | None:
    return None if forward is None else forward * (1 + BACKWARD_FACTOR)
