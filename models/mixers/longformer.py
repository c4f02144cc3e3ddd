"""Longformer attention (Beltagy, Peters & Cohan, 2020, "Longformer: The Long-Document
Transformer"): a sliding window plus symmetric global attention.

- A global position attends to every position, and every position attends to it.
- Any other position attends to its window |i - j| <= w and to the global positions.
As in the paper (and LRA's and HuggingFace's versions), global queries use their own
projections (Q_g, K_g, V_g) over all keys, while the window-and-global-keys attention of the other
positions uses the sliding-window projections (Q_s, K_s, V_s). Global positions are the first
`n_global` positions: with [CLS] pooling, the [CLS] token at position 0. Dilated windows (a
custom-kernel feature of the paper) are not implemented, as in LRA.

Memory is O(L * (w + n_global)): blocked window scores, (L, n_global) scores against the global
keys and (n_global, L) scores of the global queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention import AttentionPattern, attention


class LongformerAttention(BlockedAttention):
    """Multi-head sliding-window + global attention.

    window: one-sided reach w (the paper's window of 512 is w = 256).  n_global: how many leading
    positions are global (1 = the [CLS] token).  causal: j <= i in every part (a global position
    then sees the past only).  Other arguments as SoftmaxAttention; `qkv` / `out` are the
    sliding-window projections, `qkv_global` the global ones.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    ops = ("attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        window: int = 256,
        n_global: int = 1,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        if window < 0 or n_global < 0:
            raise ValueError(f"need window >= 0 and n_global >= 0, got {window}, {n_global}")
        self.window = window
        self.n_global = n_global
        self.qkv_global = nn.Linear(d_model, self.qkv.out_features, bias=bias)
        nn.init.xavier_uniform_(self.qkv_global.weight)

    def attend(self, q, k, v, mask, x):
        length = q.shape[2]
        n_global = min(self.n_global, length)
        dropout = self.attention_dropout
        positions = torch.arange(length, device=q.device)
        pattern = AttentionPattern(causal=self.causal, window=self.window, n_global=n_global)
        out = attention(q, k, v, mask, pattern, dropout)
        if n_global == 0:
            return out

        # Global queries: their own projections, over every key. A padded global position (a
        # sequence shorter than n_global) may see every key, so that no row is empty.
        q_g, k_g, v_g = self.split_heads(self.qkv_global(x), 3)
        from_global = mask[:, None, None, :] | ~mask[:, None, :n_global, None]  # (B, 1, G, L)
        if self.causal:
            from_global = from_global & (positions[None, :] <= positions[:n_global, None])
        global_out = F.scaled_dot_product_attention(
            q_g[:, :, :n_global], k_g, v_g, attn_mask=from_global, dropout_p=dropout
        )
        return torch.cat([global_out, out[:, :, n_global:]], dim=2)
