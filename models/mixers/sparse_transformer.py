"""Sparse Transformer attention (Child, Gray, Radford & Sutskever, 2019, "Generating Long
Sequences with Sparse Transformers"): the strided and fixed factorised patterns, with every head
attending to the union of the pattern's two parts (the paper's "merged" heads, as LRA uses).

With stride / block l and summary width c, query i attends to key j when
- strided: |i - j| <= l (local), or (i - j) mod l == 0 (every l-th position);
- fixed:   floor(i / l) == floor(j / l) (own block), or j mod l >= l - c (the last c positions
  of every block, the "summary" cells).
The causal forms add j <= i, which is the paper's form (A^(1) = {max(0, i - l), ..., i} for the
strided local part). The paper writes the fixed summaries as j mod l in {l - c, ..., l}; since
j mod l < l that is the last c positions of each block, as used here (LRA's code also admits
j mod l == 0).

Both parts are computed without an L x L matrix: the local / own-block part is blocked
(O(L * l) scores); the strided part scores each residue class mod l as one small dense problem
(L / l keys per query) and the fixed part scores every query against the L * c / l summaries.
Those two grow as L^2 / l, so they run in chunks of about `query_chunk` queries, each
checkpointed when training: the largest tensor held stays linear in L.
"""

from __future__ import annotations

import torch

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention.blocked import (
    Part,
    attend,
    blocked_part,
    chunked_part,
    merge_parts,
    neighbour_blocks_of,
    pad_to_multiple,
    window_blocks_of,
)

PATTERNS = ("strided", "fixed")


class SparseTransformerAttention(BlockedAttention):
    """Multi-head attention over a Sparse Transformer pattern.

    pattern: 'strided' | 'fixed'.  stride: l, the stride (strided) or block length (fixed); the
    paper takes l ~ sqrt(L), LRA's fixed pattern uses 128.  summary: c, summary positions per
    block of the fixed pattern (LRA: 32).  query_chunk: queries scored at once by the parts
    whose keys grow with L (a memory knob; results do not depend on it).  Other arguments as
    SoftmaxAttention.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    backend = "torch.blocked"  # explicit softmax parts merged by log-sum-exp

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        pattern: str = "fixed",
        stride: int = 128,
        summary: int = 32,
        query_chunk: int = 1024,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        if pattern not in PATTERNS:
            raise ValueError(f"pattern={pattern!r}; choose from {PATTERNS}")
        if stride < 1 or not 1 <= summary <= stride:
            raise ValueError(
                f"need stride >= 1 and 1 <= summary <= stride, got {stride}, {summary}"
            )
        self.pattern = pattern
        self.stride = stride
        self.summary = summary
        self.query_chunk = query_chunk

    def attend(self, q, k, v, mask, x):
        length = q.shape[2]
        if self.pattern == "strided":
            parts = [
                blocked_part(
                    window_blocks_of(q, k, v, mask, self.stride, self.causal),
                    self.attention_dropout,
                ),
                self._every_lth(q, k, v, mask),
            ]
        else:
            parts = [self._own_block(q, k, v, mask), self._summaries(q, k, v, mask)]
        return merge_parts(parts)[:, :, :length]

    def _every_lth(self, q, k, v, mask) -> Part:
        """Keys j = i +- m*l for m >= 2 (m = 0, 1 belong to the local window). Each residue class
        r = i mod l is a sequence of N = L / l positions: blocks (B, H, N, l, E) transposed to
        (B, H, l, N, E), scored (B, H, l, N, N), chunked over residues."""
        length, stride = q.shape[2], self.stride
        q, k, v = (pad_to_multiple(t, 2, stride).unflatten(2, (-1, stride)) for t in (q, k, v))
        valid = pad_to_multiple(mask, 1, stride, False).unflatten(1, (-1, stride))
        n_blocks = q.shape[2]
        block = torch.arange(n_blocks, device=q.device)
        gap = block[:, None] - block[None, :]  # (N query blocks, N key blocks)
        far = (gap >= 2) if self.causal else (gap.abs() >= 2)
        q, k, v = (t.transpose(2, 3) for t in (q, k, v))  # (B, H, l, N, E)
        valid = valid.transpose(1, 2)[:, None, :, None, :]  # (B, 1, l, 1, N)
        dropout = self.attention_dropout

        def residues(q_r, k_r, v_r, valid_r, start):
            return attend(q_r, k_r, v_r, valid_r & far, dropout=dropout)

        chunk = max(1, self.query_chunk // n_blocks)
        out, lse = chunked_part(residues, [q, k, v, valid], 2, chunk)
        return Part(
            out.transpose(2, 3).flatten(2, 3)[:, :, :length],
            lse.transpose(2, 3).flatten(2)[:, :, :length],
        )

    def _own_block(self, q, k, v, mask) -> Part:
        rule = None
        if self.causal:

            def rule(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
                return k_pos <= q_pos

        blocked = neighbour_blocks_of(q, k, v, mask, self.stride, 0, 0, rule)
        return blocked_part(blocked, self.attention_dropout)

    def _summaries(self, q, k, v, mask) -> Part:
        """Every query against the last c positions of every other block (its own block's are in
        `_own_block`; causal: earlier blocks only). Summaries (B, H, N*c, E), scores chunked over
        queries."""
        stride, summary = self.stride, self.summary
        k, v = (pad_to_multiple(t, 2, stride).unflatten(2, (-1, stride)) for t in (k, v))
        n_blocks = k.shape[2]
        k, v = (t[:, :, :, stride - summary :].flatten(2, 3) for t in (k, v))
        valid = pad_to_multiple(mask, 1, stride, False).unflatten(1, (-1, stride))
        valid = valid[:, :, stride - summary :].flatten(1)[:, None, None, :]  # (B, 1, 1, N*c)
        key_block = torch.arange(n_blocks, device=q.device).repeat_interleave(summary)
        causal, dropout = self.causal, self.attention_dropout

        def queries(q_c, start):
            query_block = torch.arange(start, start + q_c.shape[2], device=q_c.device) // stride
            gap = query_block[:, None] - key_block[None, :]
            other = (gap > 0) if causal else (gap != 0)
            return attend(q_c, k, v, valid & other, dropout=dropout)

        return chunked_part(queries, [q], 2, self.query_chunk)
