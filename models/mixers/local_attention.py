"""Block-local attention, the `local` model of the Long Range Arena (Tay et al., 2021, "Long
Range Arena: A Benchmark for Efficient Transformers"; the blockwise pattern of Parmar et al.,
2018, "Image Transformer"): the sequence is cut into non-overlapping blocks and each query
attends only within its block, and optionally to the previous block too.

LRA's reference code reshapes (L, ...) to (block_size, num_blocks, ...), which groups positions
with the same index modulo num_blocks rather than contiguous ones; here blocks are contiguous, as
the model is described.
"""

from __future__ import annotations

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention import AttentionPattern, attention


class LocalAttention(BlockedAttention):
    """Multi-head attention within contiguous blocks of `block_size` positions.

    block_size: positions per block (LRA: 50).  look_backward: also attend to the whole previous
    block.  causal: within its own block, position i attends to j <= i (the previous block lies
    entirely in the past).  Other arguments as SoftmaxAttention.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D). Cost and memory are
    O(L * block_size): scores are (B, H, L / block_size, block_size, block_size [x2]).
    """

    ops = ("attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        block_size: int = 50,
        look_backward: bool = False,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.look_backward = look_backward

    def attend(self, q, k, v, mask, x):
        pattern = AttentionPattern(
            causal=self.causal, block_size=self.block_size, look_backward=self.look_backward
        )
        return attention(q, k, v, mask, pattern, self.attention_dropout)
