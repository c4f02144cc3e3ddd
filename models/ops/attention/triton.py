"""The attention op in Triton, FlashAttention-2 style: forward and backward kernels that never
build the (L, L) matrix and read only the key tiles the pattern reaches. Kernels:
models/ops/attention/triton_kernels.py.

Forward (`attention_forward_kernel`): grid (ceil(L / BLOCK_M), H, B); a program holds BLOCK_M
queries (BLOCK_M x E in registers) and walks key tiles of BLOCK_N, keeping the online softmax
(running max m, sum l, output accumulator) in float32; scores are scaled by log2(e) / sqrt(E)
so the softmax is exp2. It stores O (B, H, L, Ev) in the input dtype and the log-sum-exp
LSE (B, H, L) in float32 (log2 domain): the only state the backward needs.

Which key tiles a query tile [q0, q1) visits (loop bounds, not masks):
- full: all keys; causal: keys up to q1 - 1 (the diagonal tile is the last);
- window w: keys q0 - w .. q1 - 1 + w (causal: .. q1 - 1);
- blocks of W: from the start of block(q0), or of the block before it with look_backward, to
  the end of block(q1 - 1) (causal: .. q1 - 1);
- the n_global global keys (not with full): their ceil(n_global / BLOCK_N) tiles first, then
  the local range from the first tile after them, so no tile is read twice.
Each range is cut into masked edges and an unmasked inside: a tile where every (query, key)
pair is allowed by the pattern gets no element mask; the edge tiles (diagonal, window
borders, block borders, global tiles) evaluate the pattern per element. The key padding mask
(key_valid as a (B, L) float32 row of 0 / -inf, one (BLOCK_N,) load per tile) is added to
every tile's scores.

Backward: `attention_backward_delta_kernel` first computes D = rowsum(dO * O) (B, H, L); then
two kernels, no atomics. `attention_backward_key_kernel`, grid (ceil(L / BLOCK_N), H, B): a
program holds BLOCK_N keys and values and accumulates dK, dV over the query tiles that can
see them (the pattern transposed: window: keys' range +- w; blocks: their block and, with
look_backward, the next; causal: queries from the first key on), recomputing
P = exp2(s - LSE) from the stored LSE; a key tile holding a global key visits every query
tile. `attention_backward_query_kernel`, grid (ceil(L / BLOCK_M), H, B): a program holds
BLOCK_M queries and accumulates dQ over the forward's key tiles. Every gradient is written
by one program, so results are deterministic. Causal: the forward and dQ grids start with the
last query tiles, which see the most keys (no long program left alone at the end).

A query with no allowed key (a padded query whose window holds only padding) keeps the
running max at a finite -1e30, so it gets O = 0, a finite LSE, P = 0 in the backward: no NaN
anywhere, as a NaN at a padded position would reach real ones through the next layer.

Dropout (on the probabilities, as the reference): keep(b, h, i, j) = U >= p with U a Philox
draw keyed by (seed, b * H + h, i, j), scaled by 1 / (1 - p). The backward kernels redraw the
same mask from the seed, so nothing of size L x L is stored; `dropout_keep_mask` draws it in
full for tests. The seed comes from torch's CPU generator (torch.manual_seed reproduces it) or
from the `seed` option.

Memory: O(B H L (E + Ev)) for inputs, outputs and gradients, plus 2 float32 (B, H, L) rows
(LSE, D); nothing grows with L^2 or with the window.

Against torch's SDPA (flash backend): the same algorithm, but SDPA knows only full and causal
patterns and no key padding mask in its flash kernel (a mask sends it to the slower
memory-efficient or math kernels), and computes windows and blocks over every key tile.
Here the key padding mask is a per-tile load, and windows, blocks and global keys cost work in
proportion to the keys they allow. Head dims up to 128 (any value: tiles are padded to a
power of two >= 16 with masks); float32, bfloat16 and float16 inputs, float32 accumulation;
float32 inputs use exact (ieee) products, not TF32. Grid axes 1 and 2 (H, B) must each stay
below CUDA's 65536.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton

from models.ops.attention import TRITON_MAX_HEAD_DIM
from models.ops.attention.pattern import FULL, AttentionPattern
from models.ops.attention.triton_kernels import (
    attention_backward_delta_kernel,
    attention_backward_key_kernel,
    attention_backward_query_kernel,
    attention_forward_kernel,
    dropout_keep_kernel,
)

FULL_KIND, WINDOW_KIND, BLOCKS_KIND = 0, 1, 2
LOG2_E = 1.4426950408889634


@dataclass(frozen=True)
class TileSizes:
    """Launch shapes. forward: (queries per program, keys per step); key_grads (dK/dV):
    (keys per program, queries per step); query_grads (dQ): (queries per program, keys per
    step). warps, stages: per kernel, in that order. Every size a power of two >= 16."""

    forward: tuple[int, int]
    key_grads: tuple[int, int]
    query_grads: tuple[int, int]
    warps: tuple[int, int, int] = (4, 4, 4)
    stages: tuple[int, int, int] = (3, 3, 3)


def tile_sizes(head_width: int, dtype: torch.dtype, interpreted: bool) -> TileSizes:
    """A plain rule (autotuning does not run in the interpreter). head_width: the larger of
    the padded E and Ev.

    The interpreter gets mid-sized tiles: its cost is per program and per op, and tests still
    get several tiles at L >= 100. On GPU the bf16 / fp16 shapes are FlashAttention-2's Triton
    ones for Hopper (128 x 64 forward; 32-wide steps in the backward), with the warps that
    keep every kernel free of register spills when compiled for sm_90 (ptxas -v, checked with
    triton 3.7); float32 runs exact (ieee) dots on the FMA units, in small tiles."""
    if interpreted:
        return TileSizes((64, 32), (64, 32), (64, 32), stages=(1, 1, 1))
    if dtype == torch.float32:
        warps = 4 if head_width <= 64 else 8
        return TileSizes((32, 32), (32, 32), (32, 32), (warps,) * 3, stages=(2, 2, 2))
    if head_width <= 64:
        return TileSizes((128, 64), (128, 32), (128, 32), warps=(8, 8, 8), stages=(3, 4, 4))
    return TileSizes((128, 64), (64, 32), (128, 32), warps=(8, 8, 8), stages=(3, 3, 3))


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


@dataclass(frozen=True)
class _Launch:
    """Everything the kernels take besides tensors, fixed at the forward."""

    kind: int
    causal: bool
    window: int
    block_size: int
    look_back: int
    n_global: int
    dropout: float
    seed: int
    tiles: TileSizes
    upcast: bool  # float32 tiles in the kernels (the interpreter's bf16 is wrong)
    precision: str  # tl.dot's input_precision: float32 inputs stay exact, never TF32

    @classmethod
    def of(cls, pattern, length, dropout, seed, tiles, head_width, dtype) -> _Launch:
        # Clamped to the length: same pattern, and no int32 overflow in the kernels' bounds.
        kind, window, block_size = FULL_KIND, 0, 1
        if pattern.window is not None:
            kind, window = WINDOW_KIND, min(pattern.window, length)
        elif pattern.block_size is not None:
            kind, block_size = BLOCKS_KIND, min(pattern.block_size, length)
        n_global = 0 if pattern.is_full else min(pattern.n_global, length)
        interpreted = _interpreted()
        return cls(
            kind=kind,
            causal=pattern.causal,
            window=window,
            block_size=block_size,
            look_back=int(pattern.look_backward),
            n_global=n_global,
            dropout=float(dropout),
            seed=seed,
            tiles=tiles or tile_sizes(head_width, dtype, interpreted),
            upcast=interpreted,
            precision="ieee" if dtype == torch.float32 else "tf32",
        )

    def runtime(self) -> tuple:
        keep_scale = 1.0 / (1.0 - self.dropout) if self.dropout < 1.0 else 0.0
        return (self.window, self.block_size, self.look_back, self.n_global, self.seed,
                self.dropout, keep_scale)  # fmt: skip

    def constants(self, head_dim: int, value_dim: int, block_m: int, block_n: int) -> dict:
        return dict(
            E=head_dim,
            EV=value_dim,
            BLOCK_E=_padded(head_dim),
            BLOCK_EV=_padded(value_dim),
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            KIND=self.kind,
            CAUSAL=self.causal,
            DROPOUT=self.dropout > 0.0,
            UPCAST=self.upcast,
            PRECISION=self.precision,
        )


def _padded(width: int) -> int:
    """A head width as a tile width: a power of two, at least 16 (tl.dot's minimum)."""
    return max(16, triton.next_power_of_2(width))


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


class _TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, key_bias, launch: _Launch):
        batch, heads, length, head_dim = q.shape
        value_dim = v.shape[-1]
        out = torch.empty(batch, heads, length, value_dim, dtype=q.dtype, device=q.device)
        lse = torch.empty(batch, heads, length, dtype=torch.float32, device=q.device)
        block_m, block_n = launch.tiles.forward
        attention_forward_kernel[(triton.cdiv(length, block_m), heads, batch)](
            q, k, v, key_bias, out, lse,
            *_strides(q), *_strides(k), *_strides(v), *_strides(out),
            heads, length, head_dim**-0.5 * LOG2_E, *launch.runtime(),
            **launch.constants(head_dim, value_dim, block_m, block_n),
            num_warps=launch.tiles.warps[0], num_stages=launch.tiles.stages[0],
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, key_bias, out, lse)
        ctx.launch = launch
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, key_bias, out, lse = ctx.saved_tensors
        launch: _Launch = ctx.launch
        batch, heads, length, head_dim = q.shape
        value_dim = v.shape[-1]
        grad_out = _unit_last_stride(grad_out)
        delta = torch.empty_like(lse)
        block_m = launch.tiles.query_grads[0]
        attention_backward_delta_kernel[(triton.cdiv(length, block_m), heads, batch)](
            out, grad_out, delta, *_strides(out), *_strides(grad_out), heads, length,
            EV=value_dim, BLOCK_EV=_padded(value_dim), BLOCK_M=block_m,
        )  # fmt: skip
        scale = head_dim**-0.5
        common = (heads, length, scale, scale * LOG2_E, *launch.runtime())
        grad_q = grad_k = grad_v = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_k, grad_v = torch.empty_like(k), torch.empty_like(v)
            block_n, block_m = launch.tiles.key_grads
            attention_backward_key_kernel[(triton.cdiv(length, block_n), heads, batch)](
                q, k, v, key_bias, grad_out, lse, delta, grad_k, grad_v,
                *_strides(q), *_strides(k), *_strides(v), *_strides(grad_out),
                *_strides(grad_k), *_strides(grad_v), *common,
                **launch.constants(head_dim, value_dim, block_m, block_n),
                num_warps=launch.tiles.warps[1], num_stages=launch.tiles.stages[1],
            )  # fmt: skip
        if ctx.needs_input_grad[0]:
            grad_q = torch.empty_like(q)
            block_m, block_n = launch.tiles.query_grads
            attention_backward_query_kernel[(triton.cdiv(length, block_m), heads, batch)](
                q, k, v, key_bias, grad_out, lse, delta, grad_q,
                *_strides(q), *_strides(k), *_strides(v), *_strides(grad_out),
                *_strides(grad_q), *common,
                **launch.constants(head_dim, value_dim, block_m, block_n),
                num_warps=launch.tiles.warps[2], num_stages=launch.tiles.stages[2],
            )  # fmt: skip
        return grad_q, grad_k, grad_v, None, None


def attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    pattern: AttentionPattern = FULL,
    dropout: float = 0.0,
    *,
    seed: int | None = None,
    tiles: TileSizes | None = None,
) -> torch.Tensor:
    """q, k: (B, H, L, E), v: (B, H, L, Ev), key_valid: (B, L) bool (False = padding) ->
    (B, H, L, Ev) in q's dtype, with gradients for q, k, v. Shapes and meaning as
    `attention_reference`; a query with no allowed key gets zeros.

    dropout: on the attention probabilities, drawn in the kernels from `seed` (None: one draw
    of torch's CPU generator). tiles: launch shapes (None: `tile_sizes`); tests pick small
    ones to put many tiles in a short sequence."""
    batch, heads, length, head_dim = q.shape
    value_dim = v.shape[-1]
    if max(head_dim, value_dim) > TRITON_MAX_HEAD_DIM:
        raise ValueError(f"head dims up to {TRITON_MAX_HEAD_DIM}, got E={head_dim}, Ev={value_dim}")
    if not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout}")
    k, v = k.to(q.dtype), v.to(q.dtype)
    if batch * heads * length == 0:  # nothing to launch; matmul keeps the autograd graph
        return q @ k.transpose(-1, -2) @ v
    if dropout > 0.0 and seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    width = _padded(max(head_dim, value_dim))
    launch = _Launch.of(pattern, length, dropout, seed or 0, tiles, width, q.dtype)
    # A float row rather than the bools: one 4-byte load per key, which the GPU pipelines.
    key_bias = torch.zeros(key_valid.shape, dtype=torch.float32, device=q.device)
    key_bias.masked_fill_(~key_valid.to(q.device, torch.bool), float("-inf"))
    q, k, v = (_unit_last_stride(t) for t in (q, k, v))
    return _TritonAttention.apply(q, k, v, key_bias, launch)


def dropout_keep_mask(
    seed: int, batch: int, heads: int, length: int, dropout: float, device="cpu"
) -> torch.Tensor:
    """(B, H, L, L) bool: True where dropout keeps the weight of (query i, key j), exactly as
    `attention_triton(..., dropout=dropout, seed=seed)` draws it (the same Philox function).
    For tests; it stores what the kernels never do."""
    keep = torch.empty(batch * heads, length, length, dtype=torch.int8, device=device)
    block = 32
    grid = (triton.cdiv(length, block), triton.cdiv(length, block), batch * heads)
    dropout_keep_kernel[grid](keep, length, seed, float(dropout), BLOCK=block)
    return keep.view(batch, heads, length, length).bool()


__all__ = ["TileSizes", "attention_triton", "dropout_keep_mask", "tile_sizes"]
