"""Sliding-window attention: each position attends to the positions within `window` of it, the
local pattern of Longformer (Beltagy et al., 2020, "Longformer: The Long-Document Transformer")
without its global tokens. Computed blockwise: blocks of `window` queries score the ~3 * window
keys around them, so memory is O(L * window) and no L x L matrix is built.
"""

from __future__ import annotations

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention import AttentionPattern, attention


class SlidingWindowAttention(BlockedAttention):
    """Multi-head attention of position i over positions j with |i - j| <= window.

    window: one-sided reach w (a query sees 2w + 1 positions; Longformer's window of 512 is
    w = 256).  causal: 0 <= i - j <= w instead.  Other arguments as SoftmaxAttention.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    ops = ("attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        window: int = 256,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window = window

    def attend(self, q, k, v, mask, x):
        pattern = AttentionPattern(causal=self.causal, window=self.window)
        return attention(q, k, v, mask, pattern, self.attention_dropout)
