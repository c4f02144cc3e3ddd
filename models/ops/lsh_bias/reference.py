"""Reformer's LSH-attention bias (see __init__.py) in PyTorch: the oracle of the compiled form.
Axis letters: B batch, H heads, R hashing rounds, L positions, N chunks, W chunk width."""

from __future__ import annotations

import math

import torch

from models.ops.attention.blocked import MASKED, neighbour_blocks

# Subtracted from a position's score for itself: attend to self only if nothing else.
SELF_PENALTY = 1e5


def lsh_bias_reference(
    buckets: torch.Tensor, order: torch.Tensor, n_buckets: int, chunk_size: int, causal: bool
) -> torch.Tensor:
    """Arguments and result as models.ops.lsh_bias.lsh_bias."""
    batch, heads, rounds, length = order.shape
    n_chunks = length // chunk_size
    chunk_of = order.argsort(-1) // chunk_size  # (B, H, R, L): each position's chunk per round
    q_pos = order.view(batch, heads, rounds, n_chunks, chunk_size)
    q_bucket = buckets.gather(-1, order).view_as(q_pos)
    # Keys: the previous chunk and the own one (none before the first).
    k_pos = neighbour_blocks(q_pos, 3, 1, 0, value=-1)  # (B, H, R, N, 2W)
    k_bucket = neighbour_blocks(q_bucket, 3, 1, 0, value=-1)
    allowed = (q_bucket.unsqueeze(-1) == k_bucket.unsqueeze(-2)) & (k_bucket < n_buckets).unsqueeze(
        -2
    )
    if causal:
        allowed = allowed & (k_pos.unsqueeze(-2) <= q_pos.unsqueeze(-1))
    is_self = q_pos.unsqueeze(-1) == k_pos.unsqueeze(-2)
    if rounds > 1:
        # A position is in its own set in every round, so its count is `rounds`.
        bias = log_shared_rounds(chunk_of, buckets, q_pos, k_pos).neg_()
        bias = bias.masked_fill_(is_self, -SELF_PENALTY - math.log(rounds))
    else:
        bias = is_self.float() * -SELF_PENALTY
    return bias.masked_fill_(~allowed, MASKED)


def log_shared_rounds(
    chunk_of: torch.Tensor, buckets: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor
) -> torch.Tensor:
    """log N_ij for every scored pair, N_ij = in how many rounds j shares i's bucket and sits
    in i's chunk or the one before (0 where N_ij <= 1: j outside i's set is masked anyway).
    q_pos (B, H, R, N, W), k_pos (B, H, R, N, 2W) -> float (B, H, R, N, W, 2W)."""
    shape = q_pos.shape
    rounds = buckets.shape[2]
    q_index, k_index = q_pos.flatten(2), k_pos.clamp_min(0).flatten(2)
    # One code per (round, position): same bucket and chunk one behind or equal <=> the
    # codes differ by 0 or 1 (a chunk index never reaches the n_chunks + 1 spacing).
    code = (buckets * (chunk_of.amax() + 2) + chunk_of).int()  # (B, H, R, L)
    count = torch.zeros(*shape, k_pos.shape[-1], dtype=torch.uint8, device=q_pos.device)
    for r in range(rounds):
        q_code = code[:, :, r].gather(2, q_index).view(shape)
        k_code = code[:, :, r].gather(2, k_index).view(*shape[:-1], -1)
        gap = q_code.unsqueeze(-1) - k_code.unsqueeze(-2)
        count += (gap.bitwise_and_(-2) == 0).view(torch.uint8)  # gap in {0, 1}; no copy
    # N takes the values 0..R: log N by one masked fill per value, not a float copy and a
    # log of the whole (..., W, 2W) tensor.
    log_count = torch.zeros(count.shape, dtype=torch.float32, device=count.device)
    for n in range(2, rounds + 1):
        log_count.masked_fill_(count == n, math.log(n))
    return log_count
