"""Blocked attention in PyTorch: the pieces the sparse-pattern attentions (local, sliding window,
Sparse Transformer, Longformer, BigBird, Sinkhorn, Reformer) are built from, and the `chunked`
form of the attention op (models/ops/attention/chunked.py).

Queries are cut into blocks of W positions; each block gathers the K keys its pattern may see
(its neighbouring blocks, global keys, random blocks, sorted blocks) into a dense (W, K) problem
with a boolean mask, so scores take O(L * K) memory and no L x L matrix is ever built. Two ways
to solve the blocks:

- `blocked_sdpa`: one fused `scaled_dot_product_attention` call over all blocks, when a query's
  keys are one set (local, sliding window, Longformer, BigBird, Sinkhorn);
- `attend` + `merge_parts`: explicit softmax *parts* that return their log-sum-exp, merged into
  the exact softmax over the union of their keys, when the key sets of a pattern cannot share one
  block layout (Sparse Transformer's strided columns and summaries, Reformer's hashing rounds).
  Parts must not share a (query, key) pair; each mixer removes overlaps with its masks.

Padding: sequences are padded internally to a multiple of the block width; padded keys are never
allowed, so padded positions cannot change the outputs at real positions.

Axis letters in shapes: B batch, H heads, L length, N blocks, W block width, K keys per query
block, E head width, G keys shared by every query.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# Score of a (query, key) pair the pattern forbids in `attend`. Finite, so that a query with no
# allowed key in some part gives no NaN: that part's lse is then ~MASKED and it weighs 0 in a merge.
MASKED = -1e30


class Part(NamedTuple):
    """A softmax partial. out: (..., Q, E) normalised over this part's keys; lse: (..., Q) float32
    log-sum-exp of this part's scores (about MASKED where a query has no allowed key here)."""

    out: torch.Tensor
    lse: torch.Tensor


class _SoftmaxAndLogSumExp(torch.autograd.Function):
    """scores (..., K) -> (probs = softmax(scores, -1) (..., K), lse = logsumexp(scores, -1) (...)).

    lse = s_j - log p_j for any key j; at the largest score p_j >= 1/K, so nothing underflows.
    Not scores.logsumexp: that takes torch.exp of every forbidden score (~MASKED), and exp of an
    input below -88 leaves the vectorised path (measured on this machine's EPYC: ~30 ns per
    element instead of ~2; 0.8 of Reformer's 2.3 s per mini layer step went there).

    Backward in one pass over the scores: d/ds = softmax's backward of the probabilities'
    gradient, plus lse's gradient times p, added in place. Autograd through two amax would build
    and count in int64 an equality mask of the whole scores per amax, and a separate lse
    Function would still write its product and add it (two more passes): together 15-20% of
    Reformer's `mini` step at one thread (A/B)."""

    @staticmethod
    def forward(ctx, scores):
        probs = torch.softmax(scores, dim=-1)
        ctx.save_for_backward(probs)
        return probs, scores.amax(-1) - probs.amax(-1).log()

    @staticmethod
    def backward(ctx, grad_probs, grad_lse):
        (probs,) = ctx.saved_tensors
        if grad_probs is None:
            grad = torch.zeros_like(probs)
        else:
            grad = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        if grad_lse is not None:
            grad.addcmul_(grad_lse.unsqueeze(-1), probs)
        return grad


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor | None,
    bias: torch.Tensor | None = None,
    dropout: float = 0.0,
) -> Part:
    """Scaled dot-product attention of q (..., Q, E) over k (..., K, E), v (..., K, Ev), that
    also returns the log-sum-exp of the scores, for `merge_parts`.

    allowed: bool, broadcastable to (..., Q, K), or None where the bias already holds MASKED at
    every forbidden pair (cheaper: no masked copy of the scores, forward or backward). bias:
    float, added to the scores (e.g. Reformer's self-attention penalty). dropout: on the
    attention probabilities (pass 0 in eval).
    Returns Part(out (..., Q, Ev), lse (..., Q)). The softmax runs in float32 whatever the input
    dtype. A query with no allowed key gets lse ~ MASKED, hence no weight in a merge, and a
    finite but meaningless out (only padded queries are left like that by the mixers).
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2)).float()
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores.masked_fill(~allowed, MASKED)
    probs, lse = _SoftmaxAndLogSumExp.apply(scores)
    if dropout > 0.0:
        probs = F.dropout(probs, dropout)
    return Part(torch.matmul(probs.to(v.dtype), v), lse)


def merge_parts(parts: list[Part]) -> torch.Tensor:
    """The softmax over the union of the parts' keys: sum_p exp(lse_p - lse) * out_p, where
    lse = logsumexp_p(lse_p). Every part's out has the same shape (..., Q, E) -> (..., Q, E)."""
    if len(parts) == 1:
        return parts[0].out
    total = torch.stack([p.lse for p in parts]).logsumexp(0)
    merged = None
    for part in parts:
        weight = torch.exp(part.lse - total).unsqueeze(-1).to(part.out.dtype)
        merged = part.out * weight if merged is None else merged + part.out * weight
    return merged


def pad_axis(x: torch.Tensor, dim: int, extra: int, value: float | bool = 0) -> torch.Tensor:
    """x with `extra` entries of `value` appended along `dim`."""
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_full(shape, value)], dim=dim)


def pad_to_multiple(
    x: torch.Tensor, dim: int, multiple: int, value: float | bool = 0
) -> torch.Tensor:
    """x padded with `value` along `dim` to a multiple of `multiple`."""
    return pad_axis(x, dim, (-x.shape[dim]) % multiple, value)


def neighbour_blocks(
    blocks: torch.Tensor, dim: int, before: int, after: int, value: float | bool = 0
) -> torch.Tensor:
    """For each block, the concatenation of blocks a-before .. a+after (missing ones filled with
    `value`). blocks: (..., N, W, ...) with the block axis at `dim` and the width axis at dim+1
    -> (..., N, (before+1+after)*W, ...)."""
    dim = dim % blocks.dim()
    n = blocks.shape[dim]
    if before == 0 and after == 0:
        return blocks
    front = blocks.new_full(_resized(blocks, dim, before), value)
    back = blocks.new_full(_resized(blocks, dim, after), value)
    padded = torch.cat([front, blocks, back], dim)
    shifted = [padded.narrow(dim, s, n) for s in range(before + 1 + after)]
    return torch.cat(shifted, dim=dim + 1)


def _resized(x: torch.Tensor, dim: int, size: int) -> list[int]:
    """x's shape with `dim` set to `size`."""
    shape = list(x.shape)
    shape[dim] = size
    return shape


def block_positions(
    n_blocks: int, width: int, before: int, after: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the queries (N, W) and of the keys (N, K) of `neighbour_blocks` layout, K =
    (before+1+after)*W. Key slots outside the sequence get positions < 0 or >= N*W."""
    q_pos = torch.arange(n_blocks * width, device=device).view(n_blocks, width)
    k_pos = (torch.arange(n_blocks, device=device)[:, None] - before) * width + torch.arange(
        (before + 1 + after) * width, device=device
    )
    return q_pos, k_pos


PairRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Blocked(NamedTuple):
    """Attention problems per query block. q: (B, H, N, W, E); k, v: (B, H, N, K, E); allowed:
    bool (B, 1|H, N, W|1, K); length: the real L before padding to N * W."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    allowed: torch.Tensor
    length: int

    def with_keys(self, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> Blocked:
        """Extra keys for every block: k, v (B, H, N, K2, E); allowed (B, 1|H, N, W|1, K2)."""
        shape = torch.broadcast_shapes(self.allowed.shape[:-1], allowed.shape[:-1])
        return self._replace(
            k=torch.cat([self.k, k], dim=3),
            v=torch.cat([self.v, v], dim=3),
            allowed=torch.cat(
                [self.allowed.expand(*shape, -1), allowed.expand(*shape, -1)], dim=-1
            ),
        )


def neighbour_blocks_of(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    width: int,
    before: int,
    after: int,
    rule: PairRule | None = None,
) -> Blocked:
    """Blocks of `width` queries, each with the keys of its own block and of `before` / `after`
    neighbouring blocks, restricted by rule(q_pos (N, W, 1), k_pos (N, 1, K)) -> bool.

    q, k, v: (B, H, L, E); key_valid: (B, L) bool (False = padding or excluded from this set).
    K = (before + 1 + after) * width.
    """
    length = q.shape[2]
    q, k, v = (pad_to_multiple(t, 2, width) for t in (q, k, v))
    valid = pad_to_multiple(key_valid, 1, width, False)
    n_blocks = q.shape[2] // width
    kb = neighbour_blocks(k.unflatten(2, (n_blocks, width)), 2, before, after)
    vb = neighbour_blocks(v.unflatten(2, (n_blocks, width)), 2, before, after)
    valid = neighbour_blocks(valid.unflatten(1, (n_blocks, width)), 1, before, after, False)
    allowed = valid[:, None, :, None, :]  # (B, 1, N, 1, K)
    if rule is not None:
        q_pos, k_pos = block_positions(n_blocks, width, before, after, q.device)
        allowed = allowed & rule(q_pos[:, :, None], k_pos[:, None, :])
    return Blocked(q.unflatten(2, (n_blocks, width)), kb, vb, allowed, length)


def window_blocks_of(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    window: int,
    causal: bool,
) -> Blocked:
    """Sliding window: query i sees keys j with |i - j| <= window (causal: 0 <= i - j <=
    window). Blocks of `window` queries see their block and the neighbours that reach covers,
    about 3 * window keys each. Shapes as `neighbour_blocks_of`."""
    length = q.shape[2]
    width = max(1, min(window, length))
    n_blocks = math.ceil(length / width)
    reach = min(math.ceil(window / width), n_blocks - 1)

    def near(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        offset = q_pos - k_pos
        if causal:
            return (offset >= 0) & (offset <= window)
        return offset.abs() <= window

    return neighbour_blocks_of(q, k, v, key_valid, width, reach, 0 if causal else reach, near)


def unblock(t: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, N, W, ...) -> (B, H, length, ...), dropping the internal padding."""
    return t.flatten(2, 3)[:, :, :length]


def blocked_sdpa(blocked: Blocked, query_valid: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """Solve every block with one fused `scaled_dot_product_attention` call.

    query_valid: (B, L) bool. Padded queries are let see every key of their block: then no row is
    fully masked (which some fused kernels turn into NaN, and a NaN at a padded position would
    reach real ones through the next layer's zero-times-NaN), while real rows are unchanged.
    Returns (B, H, L, E).
    """
    q, k, v, allowed, length = blocked
    batch, heads, n_blocks, width, dim = q.shape
    padded = pad_to_multiple(query_valid, 1, width, False).view(batch, 1, n_blocks, width, 1)
    allowed = allowed | ~padded

    def fold(t: torch.Tensor) -> torch.Tensor:  # (B, X, N, Y, Z) -> (B*N, X, Y, Z)
        return t.transpose(1, 2).reshape(batch * n_blocks, *t.shape[1:2], *t.shape[3:])

    out = F.scaled_dot_product_attention(
        fold(q), fold(k), fold(v), attn_mask=fold(allowed), dropout_p=dropout
    )
    return unblock(out.view(batch, n_blocks, heads, width, -1).transpose(1, 2), length)


def blocked_part(blocked: Blocked, dropout: float = 0.0) -> Part:
    """Solve every block with `attend`, for merging: Part(out (B, H, L, E), lse (B, H, L))."""
    out, lse = attend(blocked.q, blocked.k, blocked.v, blocked.allowed, dropout=dropout)
    return Part(unblock(out, blocked.length), unblock(lse, blocked.length))


def chunked_part(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    chunked: list[torch.Tensor],
    dim: int,
    size: int,
) -> Part:
    """fn applied to slices of `chunked` tensors along `dim` (`size` entries each), results
    concatenated along `dim`. fn(*slices, start) -> (out, lse) with the chunk axis at `dim` in
    both. With several chunks and autograd on, each chunk is checkpointed (recomputed in the
    backward pass), so a part whose score count grows faster than L (every query against a key
    set that grows with L) still holds only one chunk's scores at a time."""
    total = chunked[0].shape[dim]
    if total <= size:
        return Part(*fn(*chunked, 0))
    remember = torch.is_grad_enabled() and any(t.requires_grad for t in chunked)
    outs, lses = [], []
    for start in range(0, total, size):
        pieces = [t.narrow(dim, start, min(size, total - start)) for t in chunked]
        if remember:
            out, lse = checkpoint(fn, *pieces, start, use_reentrant=False)
        else:
            out, lse = fn(*pieces, start)
        outs.append(out)
        lses.append(lse)
    return Part(torch.cat(outs, dim), torch.cat(lses, dim))
