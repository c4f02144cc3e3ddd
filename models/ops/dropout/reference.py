"""Dropout with a counter-based mask, in plain PyTorch: the oracle of the `dropout` op.

Element i of x (row-major order) is kept where bits_i >= threshold = ceil(p * 2^32), i.e. where
the uniform bits_i / 2^32 is at least p, and then scaled by 1 / (1 - p); bits_i is word i mod 4
of Philox4x32-10 (Salmon et al., SC 2011: Random123's philox4x32, Triton's tl.philox) at counter
(i // 4 low 32 bits, i // 4 high 32 bits, 0, 0) and key (seed low 32 bits, seed high 32 bits).
The mask is a pure function of (seed, i): any backend, any thread count, any device draws the
same one, and a backward draws it again instead of storing it.

The 32-bit words are held in int64 tensors; a 32 x 32-bit product, which int64 cannot hold, is
taken in two halves of 16 bits.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
KEY_BUMPS = (0x9E3779B9, 0xBB67AE85)  # the golden ratio, sqrt(3) - 1
ROUNDS = 10


def _multiply_high_low(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of a * b for a constant a and words b (int64 tensors)."""
    low_product = a * (b & 0xFFFF)  # < 2^48
    high_product = a * (b >> 16)  # < 2^48; a * b = high_product * 2^16 + low_product
    low = (low_product + ((high_product & 0xFFFF) << 16)) & MASK32
    high = (high_product + (low_product >> 16)) >> 16
    return high, low


def philox4x32(counter: tuple, key: tuple) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10. counter: 4 int64 tensors (or ints) of 32-bit words, broadcastable; key: 2
    ints or int64 tensors. Returns the 4 output words as int64 tensors."""
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.int64) for c in counter)
    k0, k1 = (torch.as_tensor(k, dtype=torch.int64) for k in key)
    for _ in range(ROUNDS):
        high0, low0 = _multiply_high_low(MULTIPLIERS[0], c0)
        high1, low1 = _multiply_high_low(MULTIPLIERS[1], c2)
        c0, c1, c2, c3 = high1 ^ c1 ^ k0, low1, high0 ^ c3 ^ k1, low0
        k0 = (k0 + KEY_BUMPS[0]) & MASK32
        k1 = (k1 + KEY_BUMPS[1]) & MASK32
    return c0, c1, c2, c3


def check_probability(p: float) -> float:
    """p itself, or a ValueError naming it when it is not a probability."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return p


def keep_threshold(p: float) -> int:
    """ceil(p * 2^32): an element is kept where its 32 bits are at least this (2^32: never)."""
    return math.ceil(check_probability(p) * 2**32)


def keep_scale(p: float) -> float:
    """1 / (1 - p), the factor of the kept elements; 0 at p = 1, where nothing is kept."""
    return 0.0 if p >= 1.0 else 1.0 / (1.0 - p)


def keep_mask(numel: int, seed: int, p: float, device="cpu") -> torch.Tensor:
    """(numel,) bool: True where dropout with this seed and p keeps element i."""
    blocks = torch.arange((numel + 3) // 4, dtype=torch.int64, device=device)
    words = philox4x32((blocks & MASK32, blocks >> 32, 0, 0), (seed & MASK32, seed >> 32))
    bits = torch.stack(words, dim=1).flatten()[:numel]
    return bits >= keep_threshold(p)


def dropout_reference(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """x: any shape, floating. p: the probability of zeroing an element. seed: int in
    [0, 2^63). Returns y of x's shape and dtype: x * keep / (1 - p), keep = keep_mask(seed)."""
    keep = keep_mask(x.numel(), seed, p, x.device).view(x.shape)
    return x * (keep.to(x.dtype) * keep_scale(p))
