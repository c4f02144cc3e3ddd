"""BigBird attention (Zaheer et al., 2020, "Big Bird: Transformers for Longer Sequences"), the
ITC form with blocks: the sequence is cut into blocks of b positions and

- each query block attends to its window (previous, own and next block),
- to the global blocks, and to r random blocks;
- the global blocks attend to every position.
Global blocks are the first ceil(g / 2) and the last floor(g / 2) real blocks of each sequence
(g = 2: first and last, as in the paper's and LRA's code; the [CLS] token is in the first). The
last block is counted per sequence, so padding never moves it. The causal form uses the first g
blocks, since which block is last depends on the future.

The random blocks are drawn per layer and head when the layer is built: each (head, query block,
key block) gets a fixed random priority and a query block takes the r highest-priority blocks
among those it may use (real, outside its window and the global blocks; causal: earlier). So
eval is deterministic, and a sequence gets the same blocks whatever padding follows it.

Memory is O(L * b * (3 + g + r)); the priority table is (H, N_max, N_max), N_max =
ceil(max_length / b).

Short sequences: where every query block's window, global and random blocks together hold every
real block of its sequence (no query block has more candidate blocks than r; e.g. ListOps `mini`,
L 201 in 4 blocks of 64), the pattern is full attention, each key counted once, and the layer
computes it as full attention (the Transformer's `attention` op) instead of gathering 3 + g + r
blocks per query block, which there cost more than the whole sequence (8 blocks of keys against
4; ~5x slower `mini` steps at one thread, measured). The function is the same; only attention dropout draws
its masks differently. `dense_when_covered=False` keeps the block form (tests compare the two).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention import AttentionPattern, attention
from models.ops.attention.blocked import blocked_sdpa, neighbour_blocks_of, pad_to_multiple

BLOCK_FORM = "torch.sdpa.blocked"  # one fused SDPA call over all query blocks


class BigBirdAttention(BlockedAttention):
    """Multi-head block-sparse attention: window + global + random blocks.

    block_size: b (paper and LRA: 64).  n_random_blocks: r (3).  n_global_blocks: g (2).
    max_length: the longest sequence it will see (the backbone passes it); sizes the random
    priority table.  seed: of the random blocks; None draws one from torch's global generator,
    so each layer differs and a run seed reproduces them.  causal: j <= i in every part, random
    blocks from earlier blocks only.  dense_when_covered: compute a batch whose blocks cover
    every key as full attention (the same function; see the module's docstring).  Other
    arguments as SoftmaxAttention.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    ops = ("attention",)  # the full-attention op, where the blocks cover every key

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        block_size: int = 64,
        n_random_blocks: int = 3,
        n_global_blocks: int = 2,
        max_length: int = 4096,
        seed: int | None = None,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
        dense_when_covered: bool = True,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        self.dense_when_covered = dense_when_covered
        self.ran_block_form = False
        if block_size < 1 or n_random_blocks < 0 or n_global_blocks < 0:
            raise ValueError("need block_size >= 1, n_random_blocks >= 0, n_global_blocks >= 0")
        self.block_size = block_size
        self.n_random_blocks = n_random_blocks
        self.n_global_blocks = n_global_blocks
        if seed is None:
            # Drawn on the CPU whatever the default device: on 'meta' (counting parameters
            # without allocating them, lra_bench/budget.py) a tensor has no value to read.
            seed = int(torch.randint(0, 2**31 - 1, (), device="cpu").item())
        generator = torch.Generator().manual_seed(seed)
        max_blocks = math.ceil(max_length / block_size)
        # Persistent, so that a checkpoint restores the same random blocks.
        self.register_buffer(
            "random_priority", torch.rand(n_heads, max_blocks, max_blocks, generator=generator)
        )

    @property
    def backend(self) -> str | None:
        """What computed the block form, for the run record (None: it never ran; the full
        attention op reports itself)."""
        return BLOCK_FORM if self.ran_block_form else None

    def global_blocks(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, N) bool: the global blocks of each sequence: the first ceil(g/2) and the last
        floor(g/2) real blocks (causal: the first g). mask: (B, N*b) bool, whole blocks."""
        n_blocks = mask.shape[1] // self.block_size
        last = (mask.long().sum(1).clamp_min(1) - 1) // self.block_size  # (B,)
        block = torch.arange(n_blocks, device=mask.device)[None, :]
        if self.causal:
            # Which block is last depends on the sequence's length, i.e. on the future.
            return (block < self.n_global_blocks).expand(mask.shape[0], -1)
        first = block < math.ceil(self.n_global_blocks / 2)
        final = (block > last[:, None] - self.n_global_blocks // 2) & (block <= last[:, None])
        return first | final

    def candidate_blocks(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, N) bool: the key blocks each query block may draw as random blocks (real,
        outside its window and the global blocks; causal: earlier). mask: (B, N*b) bool,
        padded to whole blocks."""
        n_blocks = mask.shape[1] // self.block_size
        if n_blocks > self.random_priority.shape[1]:
            raise ValueError(
                f"{n_blocks} blocks of {self.block_size} exceed the max_length this BigBird "
                f"layer was built for ({self.random_priority.shape[1]} blocks)"
            )
        block = torch.arange(n_blocks, device=mask.device)
        real = mask.unflatten(1, (n_blocks, self.block_size)).any(-1)  # (B, N)
        gap = block[:, None] - block[None, :]  # (query block, key block)
        usable = (gap >= 2) if self.causal else (gap.abs() >= 2)
        return usable & (real & ~self.global_blocks(mask))[:, None, :]

    def covers_every_key(self, mask: torch.Tensor) -> bool:
        """Whether every query block of every sequence attends to every real key (causal: every
        earlier one): true when no query block has more random candidates than r, since the
        window, the global and the random blocks are disjoint and together hold the rest.
        mask: (B, N*b) bool, padded to whole blocks."""
        most = self.candidate_blocks(mask).sum(-1).max()
        return bool(most <= self.n_random_blocks)

    def random_blocks(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The random key blocks of every query block: indices (B, H, N, r) and whether each
        choice is real (B, H, N, r), False where a short sequence has fewer than r candidates.
        mask: (B, N*b) bool, padded to whole blocks."""
        usable = self.candidate_blocks(mask)  # (B, N, N)
        n_blocks = usable.shape[1]
        priority = self.random_priority[:, :n_blocks, :n_blocks]
        priority = priority.masked_fill(~usable[:, None], -1.0)  # (B, H, N, N)
        chosen_priority, chosen = priority.topk(min(self.n_random_blocks, n_blocks), dim=-1)
        return chosen, chosen_priority >= 0

    def attend(self, q, k, v, mask, x):
        length, width = q.shape[2], self.block_size
        blocks_mask = pad_to_multiple(mask, 1, width, False)
        if self.dense_when_covered and self.covers_every_key(blocks_mask):
            pattern = AttentionPattern(causal=self.causal)
            return attention(q, k, v, mask, pattern, self.attention_dropout)
        self.ran_block_form = True
        q, k, v = (pad_to_multiple(t, 2, width) for t in (q, k, v))
        mask = blocks_mask
        batch, heads, padded, dim = q.shape
        n_blocks = padded // width
        dropout = self.attention_dropout
        is_global = self.global_blocks(mask)  # (B, N)
        positions = torch.arange(padded, device=q.device)
        offsets = torch.arange(width, device=q.device)
        causal_rule = (lambda q_pos, k_pos: k_pos <= q_pos) if self.causal else None

        # Every query block's keys, in one set: its window (blocks a-1, a, a+1, minus global
        # blocks so that no pair counts twice), the global blocks, its random blocks.
        window_keys = mask & ~is_global.repeat_interleave(width, 1)
        after = 0 if self.causal else 1
        blocked = neighbour_blocks_of(q, k, v, window_keys, width, 1, after, causal_rule)

        g = min(self.n_global_blocks, n_blocks)
        if g > 0:
            # The g global block indices per sequence; `present` marks off the stand-ins that
            # fill the count when first and last block coincide.
            order = torch.sort(is_global.long(), dim=1, descending=True, stable=True)
            index, present = order.indices[:, :g], order.values[:, :g].bool()  # (B, g)
            global_index = (index[:, :, None] * width + offsets).flatten(1)  # (B, g*b)
            global_gather = global_index[:, None, :, None].expand(batch, heads, -1, dim)
            global_k, global_v = (
                t.gather(2, global_gather)[:, :, None].expand(-1, -1, n_blocks, -1, -1)
                for t in (k, v)
            )
            global_ok = mask.gather(1, global_index) & present.repeat_interleave(width, 1)
            allowed = global_ok[:, None, None, None, :]  # (B, 1, 1, 1, g*b)
            if self.causal:
                q_pos = positions.view(n_blocks, width, 1)
                allowed = allowed & (global_index[:, None, None, None, :] <= q_pos)
            blocked = blocked.with_keys(global_k, global_v, allowed)

        if self.n_random_blocks > 0 and n_blocks > 1:
            chosen, chosen_ok = self.random_blocks(mask)  # (B, H, N, r)
            r = chosen.shape[-1]
            key_index = (chosen[..., None] * width + offsets).flatten(2)  # (B, H, N*r*b)
            gather = key_index[..., None].expand(-1, -1, -1, dim)
            random_k = k.gather(2, gather).view(batch, heads, n_blocks, r * width, dim)
            random_v = v.gather(2, gather).view(batch, heads, n_blocks, r * width, dim)
            random_ok = mask.gather(1, key_index.flatten(1)).view(batch, heads, n_blocks, -1)
            random_ok = random_ok & chosen_ok.repeat_interleave(width, -1)
            # Causal random blocks lie two or more blocks back: entirely in the past.
            blocked = blocked.with_keys(random_k, random_v, random_ok[:, :, :, None, :])
        out = blocked_sdpa(blocked, mask, dropout)

        # Global queries attend to every key; their rows replace the sparse ones. A padded
        # global row may see every key, so that no row is empty.
        if g > 0:
            rows = q.gather(2, global_gather)  # (B, H, g*b, E)
            allowed = mask[:, None, None, :] | ~mask.gather(1, global_index)[:, None, :, None]
            if self.causal:
                allowed = allowed & (positions <= global_index[:, None, :, None])
            global_out = F.scaled_dot_product_attention(
                rows, k, v, attn_mask=allowed, dropout_p=dropout
            )
            keep = present.repeat_interleave(width, 1)[:, None, :, None]
            current = out.gather(2, global_gather)
            out = out.scatter(2, global_gather, torch.where(keep, global_out, current))
        return out[:, :, :length]
