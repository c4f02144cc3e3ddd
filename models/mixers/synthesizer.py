"""Synthesizer attention (Tay, Bahri, Metzler, Juan, Zhao & Zheng, 2021, "Synthesizer:
Rethinking Self-Attention in Transformer Models").

The attention logits are synthesised instead of computed from query-key dot products:
- Dense: each position predicts its own row of logits over the key positions,
  B_i = W2 relu(W1 x_i + b1) + b2 in R^max_length (per head, with W2 shared by the heads, as in
  the LRA implementation), cut to the first L columns;
- Random: a (max_length, max_length) logit matrix per head, independent of the input, learned
  or fixed at its random initialisation; optionally factorised as R1 R2 with rank r.
Y = softmax(B) G(X) with G a value projection, per head. `with_dot_product` adds the usual
q k^T / sqrt(d) to the synthetic logits (the "+ Vanilla" mixture; LRA's Synthesizer row ran
Random + Vanilla). The logit matrix is L x L by design. Padded keys are masked; causal masks
keys after the query.
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers.additive_mask import additive_mask
from models.layers.dropout import Dropout
from models.layers.projections import merge_heads, split_heads

KINDS = ("dense", "random")


class SynthesizerAttention(nn.Module):
    """Multi-head Dense or Random Synthesizer.

    d_model: D.  max_length: longest sequence (columns of the synthetic logits).  kind:
    'dense' | 'random'.  n_heads: H.  qkv_dim: total value width (default D).  rank: for
    'random', factorise each head's matrix as (max_length, r) @ (r, max_length); null = full.
    learned: for 'random', train the matrix (False = the fixed random variant).
    with_dot_product: add query-key logits.  dropout: on attention probabilities.  causal:
    attend to j <= i only.  bias: biases in the value/query/key/out projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D), L <= max_length.
    """

    def __init__(
        self,
        d_model: int,
        max_length: int,
        kind: str = "dense",
        n_heads: int = 8,
        qkv_dim: int | None = None,
        rank: int | None = None,
        learned: bool = True,
        with_dot_product: bool = False,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"synthesizer kind={kind!r}; choose from {KINDS}")
        qkv_dim = qkv_dim or d_model
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim {qkv_dim} is not divisible by n_heads {n_heads}")
        self.kind = kind
        self.n_heads = n_heads
        self.head_dim = qkv_dim // n_heads
        self.max_length = max_length
        self.rank = rank
        self.with_dot_product = with_dot_product
        self.dropout = Dropout(dropout)
        self.causal = causal
        self.value = nn.Linear(d_model, qkv_dim, bias=bias)
        self.out = nn.Linear(qkv_dim, d_model, bias=bias)
        nn.init.xavier_uniform_(self.value.weight)
        nn.init.xavier_uniform_(self.out.weight)
        if with_dot_product:
            self.query_key = nn.Linear(d_model, 2 * qkv_dim, bias=bias)
            nn.init.xavier_uniform_(self.query_key.weight)
        if kind == "dense":
            # F(x) = W2 relu(W1 x + b1) + b2; the paper's F has both biases.
            self.dense_hidden = nn.Linear(d_model, qkv_dim)
            self.dense_logits = nn.Linear(self.head_dim, max_length)
        else:
            self._init_random(max_length, learned)

    def _init_random(self, max_length: int, learned: bool) -> None:
        # LeCun-normal scale (LRA's kernel init): logits start small, attention near uniform.
        heads = self.n_heads
        if self.rank is None:
            tensors = {"random_logits": torch.randn(heads, max_length, max_length)}
            tensors["random_logits"] *= max_length**-0.5
        else:
            tensors = {
                "random_left": torch.randn(heads, max_length, self.rank) * max_length**-0.5,
                "random_right": torch.randn(heads, self.rank, max_length) * self.rank**-0.5,
            }
        for name, value in tensors.items():
            if learned:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def synthetic_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D) -> logits (B or 1, H, L, L)."""
        length = x.shape[1]
        if self.kind == "dense":
            hidden = torch.relu(split_heads(self.dense_hidden(x), self.n_heads))  # (B, H, L, d)
            return self.dense_logits(hidden)[..., :length]
        if self.rank is None:
            return self.random_logits[None, :, :length, :length]
        left = self.random_left[:, :length]
        right = self.random_right[:, :, :length]
        return (left @ right)[None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length {self.max_length}")
        logits = self.synthetic_logits(x).to(x.dtype)
        if self.with_dot_product:
            q, k = (split_heads(t, self.n_heads) for t in self.query_key(x).chunk(2, dim=-1))
            logits = logits + q @ k.transpose(-1, -2) * self.head_dim**-0.5
        allowed = mask[:, None, None, :]  # (B, 1, 1, L)
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        logits = logits + additive_mask(allowed, logits.dtype)
        weights = self.dropout(logits.softmax(dim=-1))
        v = split_heads(self.value(x), self.n_heads)
        return self.out(merge_heads(weights @ v))
