"""Gated linear attention in Triton, forward and backward: flash-linear-attention's chunked
algorithm (Yang et al., 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training"; fla/ops/gla/chunk.py and fla/ops/common/chunk_h.py), for GLA, RWKV-6 (bonus u) and
causal linear attention (no decay). The op: reference.py.

Kernels (triton_forward.py, triton_backward.py; bh = batch * heads, BT = 64 steps per chunk, NT
chunks, bands of BC = 16 rows, BK / BV <= 64 blocks of the key / value width, 32 in the walks):
  forward
    cumulative decay  grid (NT, K/BK, bh)    G = within-chunk cumsum of log_decay (float32);
                                             RWKV-6 also Gq = G - log_decay (exclusive)
    states            grid (K/32, V/32, bh)  walks the chunks in order with its block of the
                                             state in registers; stores the state entering
                                             every chunk (bh, NT + 1, K, V), the final one last
    intra scores      grid (NT*BT/BC, bh)    A[t, s] = sum_k q_t k_s exp(Gq_t - G_s), s <= t in
                                             a chunk, for one band of BC query rows
    output            grid (V/BV, NT, bh)    o = (q * exp(Gq)) @ S_entering + A @ v
  backward (the states are recomputed by the forward's kernel)
    state gradients   grid (K/32, V/32, bh)  walks the chunks backwards: dS_c =
                                             diag(exp(G_last)) dS_{c+1} + (q * exp(Gq))^T do
    score gradients   grid (NT, bh)          dA = do @ v^T, lower triangle of each chunk
    dv                grid (V/BV, NT, bh)    A^T @ do + (k * exp(G_last - G)) @ dS_leaving
    dq, dk            grid (K/16, NT*BT/BC, bh)  per band and 16 key channels, as the scores;
                                             also x = q dq - k dk for the decay gradient
    dlog_decay        grid (NT, K/BK, bh)    reverse cumsum of x over the chunk plus
                                             rowsum(dS_leaving * S_leaving) (derived in
                                             triton_backward.py)
Every product of tiles is a tl.dot with float32 accumulation. Float32 inputs: float32 operands
at tf32x3 precision (float32 accuracy from the tensor cores). bf16 / fp16 inputs on CUDA, as
fla: the products with states, and A @ v, take operands cast to that dtype in registers; the
within-chunk products (scores, dq, dk) stay float32 at tf32 precision, and A^T @ do in dv at
float32 accuracy (tf32x3). Loads are upcast to float32; every load and store is masked, so K, V
and L need not be multiples of anything. The inputs are made contiguous first (strided q, k, v,
as from a fused projection, cost one copy). All kernels compile for sm_90 (tested without a GPU);
with 8 warps (4 for the scores) none spills registers for bf16 inputs.

Stored vs recomputed. Saved for the backward: the inputs, G (and Gq for RWKV-6), (bh, L, K), and
A, (bh, L, BT), all float32: 4 (K + BT) bytes per head and step beyond the inputs (GLA). The
states, (bh, NT + 1, K, V) float32 (4 K V / BT bytes per head and step, as large as A when
K = V = BT), are recomputed by one more pass over k and v, as fla does. The backward adds float32
buffers: the states and their gradients, dA (bh, L, BT) and, with decay, x (bh, L, K).

Numerical safety. Factorising exp(G_t - G_s) = exp(G_t) exp(-G_s) over a whole chunk overflows
float32 once the decay over a chunk passes ~88 (log_decay = -50 per step: after 2 steps). Here no
factor exceeds 1. Between chunks: the states are multiplied by exp(G_last), the keys by
exp(G_last - G_s) and the queries by exp(Gq_t), all <= 1. Within a chunk: the two-level
(secondary) chunking of the GLA paper in the exact form fla uses, chosen because it keeps the
bulk of the pairs on tl.dot: a query band and the keys of the earlier bands meet in one tl.dot
with the decay split at a reference point r, the last row before the band:
exp(Gq_t - G_r) * exp(G_r - G_s), s <= r <= t, both factors <= 1; no such r exists for the
pairs inside a band, so its (BC, BC) tile forms every pair's exponent Gq_t - G_s before exp,
(16, 16, 16) (query, key, channel) at a time. Exponents of masked pairs and padded rows are
clamped at 0 (exp(min(x, 0)); the real ones are <= 0 already), so masked products are 0, never
inf * 0. Decays too strong for float32 give weights that underflow to 0, which is what they are.

Chunk length. BT = 64 (fewer for short sequences; at least 16, the smallest tl.dot) is the
kernels' tile, fixed by their register budget; the op's `chunk_size` (the PyTorch form's CPU
tuning, 8 in the configs) is not taken (kernel_chunk picks 16, 32 or 64 for tests). Float64
inputs are computed in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from models.ops.gated_linear_attention.triton_backward import (
    chunk_decay_gradients_kernel,
    chunk_query_key_gradients_kernel,
    chunk_state_gradients_kernel,
    chunk_value_gradients_kernel,
    intra_chunk_score_gradients_kernel,
)
from models.ops.gated_linear_attention.triton_forward import (
    chunk_cumulative_decay_kernel,
    chunk_output_kernel,
    chunk_states_kernel,
    intra_chunk_scores_kernel,
)

# Rows and key channels per band of the within-chunk tiles: the smallest tl.dot, and a band's
# own (16, 16, 16) tile of pairwise decays fits in registers.
BAND = 16
BAND_K = 16
CHUNKS = (16, 32, 64)
# Warps of the kernels with (64, 64) tiles or 3-d band tiles: with 4, ptxas (sm_90) spills
# registers in dv and dq/dk; with 8 none spills for bf16 inputs. The scores kernel uses 4.
WIDE = 8


def gated_linear_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    *,
    kernel_chunk: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gated linear attention by Triton kernels, differentiable in every tensor input.

    q, k: (b, h, l, K).  v: (b, h, l, V).  log_decay: (b, h, l, K), <= 0, or None (no decay).
    bonus: (h, K) RWKV-6's u, or None (GLA).  initial_state: (b, h, K, V) or None.
    kernel_chunk: steps per chunk of the kernels, 16, 32 or 64 (fewer if l is shorter).
    Returns o: (b, h, l, V) in q's dtype and the final state (b, h, K, V) in q's dtype.
    """
    if kernel_chunk not in CHUNKS:
        raise ValueError(f"kernel_chunk={kernel_chunk}; choose from {CHUNKS}")
    batch, heads, length, key_width = q.shape
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} disagree")
    if log_decay is not None and log_decay.shape != q.shape:
        raise ValueError(f"log_decay {tuple(log_decay.shape)} is not q's {tuple(q.shape)}")
    if bonus is not None and bonus.shape != (heads, key_width):
        raise ValueError(f"bonus {tuple(bonus.shape)} is not (heads, K) = {(heads, key_width)}")
    expected_state = (batch, heads, key_width, v.shape[-1])
    if initial_state is not None and initial_state.shape != expected_state:
        raise ValueError(f"initial_state {tuple(initial_state.shape)} is not {expected_state}")
    if length == 0:
        raise ValueError("gated linear attention needs at least one time step")
    return _GatedLinearAttention.apply(q, k, v, log_decay, bonus, initial_state, kernel_chunk)


class _Tiling:
    """Tile sizes and launch facts for one call (plain heuristics: autotune cannot run in the
    interpreter)."""

    def __init__(self, q: torch.Tensor, v: torch.Tensor, kernel_chunk: int) -> None:
        batch, heads, self.length, self.key_width = q.shape
        self.value_width = v.shape[-1]
        self.heads, self.rows = heads, batch * heads
        self.chunk = min(kernel_chunk, max(BAND, triton.next_power_of_2(self.length)))
        self.chunks = triton.cdiv(self.length, self.chunk)
        self.bands = self.chunks * (self.chunk // BAND)
        self.block_k = _block(self.key_width, 64)
        self.block_v = _block(self.value_width, 64)
        self.k_blocks = triton.cdiv(self.key_width, self.block_k)
        self.v_blocks = triton.cdiv(self.value_width, self.block_v)
        self.band_k_blocks = triton.cdiv(self.key_width, BAND_K)
        # The walks over the chunks are sequential per program: smaller state blocks give more
        # programs ((K / 32) (V / 32) bh) to fill the GPU.
        self.walk_k = _block(self.key_width, 32)
        self.walk_v = _block(self.value_width, 32)
        self.walk_grid = (
            triton.cdiv(self.key_width, self.walk_k),
            triton.cdiv(self.value_width, self.walk_v),
            self.rows,
        )
        # The operands of tl.dot, as in fla: on CUDA, 16-bit inputs meet the states in their own
        # dtype and the within-chunk products in float32 at tf32 precision. Float32 inputs, and
        # everything in the interpreter (which computes bf16 wrongly), use float32 operands at
        # tf32x3 precision: float32 accuracy (to ~1e-7) from the tensor cores, where "ieee"
        # would run (64, 64, 64) products on the CUDA cores and spill registers. Accumulation
        # is float32 throughout.
        low = {torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}
        sixteen_bit = q.device.type == "cuda" and q.dtype in low
        self.dot = low[q.dtype] if sixteen_bit else tl.float32
        self.precision = "tf32" if sixteen_bit else "tf32x3"

    @property
    def sizes(self) -> dict:
        """The constexpr sizes of the kernels that work on one chunk per program."""
        return {
            "K": self.key_width,
            "V": self.value_width,
            "BT": self.chunk,
            "BK": self.block_k,
            "BV": self.block_v,
        }

    @property
    def walk_sizes(self) -> dict:
        """The constexpr sizes of the kernels that walk over the chunks."""
        return {**self.sizes, "BK": self.walk_k, "BV": self.walk_v}


def _block(width: int, largest: int) -> int:
    """A power-of-two block >= 16 (the smallest tl.dot) covering width, at most `largest`."""
    return min(largest, max(16, triton.next_power_of_2(width)))


def _forward(q, k, v, log_decay, bonus, initial_state, tiling: _Tiling):
    """(o, states (bh, NT + 1, K, V) float32, G, Gq, A) for contiguous inputs."""
    t = tiling
    has_decay, has_bonus = log_decay is not None, bonus is not None
    cumulative = query_cumulative = None
    if has_decay:
        cumulative = torch.empty(q.shape, device=q.device, dtype=torch.float32)
        query_cumulative = torch.empty_like(cumulative) if has_bonus else cumulative
        chunk_cumulative_decay_kernel[(t.chunks, t.k_blocks, t.rows)](
            log_decay, cumulative, query_cumulative, t.length,
            K=t.key_width, BT=t.chunk, BK=t.block_k, EXCLUSIVE=has_bonus,
        )  # fmt: skip
    states = _states(k, v, cumulative, initial_state, t)
    scores = torch.empty(*q.shape[:3], t.chunk, device=q.device, dtype=torch.float32)
    intra_chunk_scores_kernel[(t.bands, t.rows)](
        q, k, _or(cumulative, q), _or(query_cumulative, q), _or(bonus, q), scores,
        t.length, t.heads, K=t.key_width, BT=t.chunk, BC=BAND, BK=BAND_K,
        HAS_DECAY=has_decay, HAS_BONUS=has_bonus, PRECISION=t.precision, num_warps=4,
    )  # fmt: skip
    o = torch.empty(v.shape, device=q.device, dtype=q.dtype)
    chunk_output_kernel[(t.v_blocks, t.chunks, t.rows)](
        q, v, _or(query_cumulative, q), states, scores, o, t.length, t.chunks,
        **t.sizes, HAS_DECAY=has_decay, DOT=t.dot, PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip
    return o, states, cumulative, query_cumulative, scores


def _states(k, v, cumulative, initial_state, t: _Tiling) -> torch.Tensor:
    """The state entering every chunk and the final state: (bh, NT + 1, K, V) float32."""
    states = torch.empty(
        t.rows, t.chunks + 1, t.key_width, t.value_width, device=k.device, dtype=torch.float32
    )
    chunk_states_kernel[t.walk_grid](
        k, v, _or(cumulative, k), _or(initial_state, k), states, t.length, t.chunks,
        **t.walk_sizes, HAS_DECAY=cumulative is not None, HAS_INITIAL=initial_state is not None,
        DOT=t.dot, PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip
    return states


def _backward(saved, do, final_grad, t: _Tiling, decay_grad: bool):
    """Gradients (dq, dk, dv, dlog_decay, dbonus, dinitial_state); None for absent inputs, and
    for log_decay unless decay_grad."""
    q, k, v, log_decay, bonus, initial_state, cumulative, query_cumulative, scores = saved
    has_decay, has_bonus = log_decay is not None, bonus is not None
    decay_grad = decay_grad and has_decay
    device = q.device
    states = _states(k, v, cumulative, initial_state, t)

    dstates = torch.empty(
        t.rows, t.chunks, t.key_width, t.value_width, device=device, dtype=torch.float32
    )
    dinitial = None if initial_state is None else torch.empty_like(initial_state)
    chunk_state_gradients_kernel[t.walk_grid](
        q, do, _or(cumulative, q), _or(query_cumulative, q), _or(final_grad, q), dstates,
        _or(dinitial, q), t.length, t.chunks, **t.walk_sizes, HAS_DECAY=has_decay,
        HAS_FINAL_GRAD=final_grad is not None, HAS_INITIAL=initial_state is not None,
        DOT=t.dot, PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip

    dscores = torch.empty_like(scores)
    intra_chunk_score_gradients_kernel[(t.chunks, t.rows)](
        v, do, dscores, t.length, V=t.value_width, BT=t.chunk, BV=t.block_v, DOT=t.dot,
        PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip
    dv = torch.empty_like(v)
    chunk_value_gradients_kernel[(t.v_blocks, t.chunks, t.rows)](
        k, _or(cumulative, k), scores, do, dstates, dv, t.length, t.chunks, **t.sizes,
        HAS_DECAY=has_decay, DOT=t.dot, PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip

    dq, dk = torch.empty_like(q), torch.empty_like(k)
    decay_terms = torch.empty_like(cumulative) if decay_grad else None
    bonus_terms = torch.empty_like(cumulative) if decay_grad and has_bonus else None
    bonus_parts = None
    if has_bonus:
        bonus_parts = torch.zeros(t.rows, t.bands, t.key_width, device=device)
    chunk_query_key_gradients_kernel[(t.band_k_blocks, t.bands, t.rows)](
        q, k, v, _or(cumulative, q), _or(query_cumulative, q), _or(bonus, q), do, states,
        dstates, dscores, dq, dk, _or(decay_terms, q), _or(bonus_terms, q),
        _or(bonus_parts, q), t.length, t.heads, t.chunks, K=t.key_width, V=t.value_width,
        BT=t.chunk, BC=BAND, BK=BAND_K, BV=t.block_v,
        HAS_DECAY=has_decay, HAS_BONUS=has_bonus, DECAY_GRAD=decay_grad, DOT=t.dot,
        PRECISION=t.precision, num_warps=WIDE,
    )  # fmt: skip

    dlog_decay = None
    if decay_grad:
        dlog_decay = torch.empty_like(log_decay)
        chunk_decay_gradients_kernel[(t.chunks, t.k_blocks, t.rows)](
            decay_terms, _or(bonus_terms, decay_terms), states, dstates, dlog_decay,
            t.length, t.chunks, **t.sizes, HAS_BONUS=has_bonus, num_warps=WIDE,
        )  # fmt: skip
    dbonus = None
    if has_bonus:
        batch = q.shape[0]
        dbonus = bonus_parts.view(batch, t.heads, -1, t.key_width).sum((0, 2)).to(bonus.dtype)
    return dq, dk, dv, dlog_decay, dbonus, dinitial


def _or(tensor: torch.Tensor | None, stand_in: torch.Tensor) -> torch.Tensor:
    """A kernel argument for an absent input: any tensor (its constexpr flag keeps it unread)."""
    return stand_in if tensor is None else tensor


def _prepared(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """Contiguous, and float32 if it was float64 (the kernels compute in float32)."""
    if tensor is None:
        return None
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor.contiguous()


class _GatedLinearAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, log_decay, bonus, initial_state, kernel_chunk):
        dtypes = [
            None if x is None else x.dtype for x in (q, k, v, log_decay, bonus, initial_state)
        ]
        inputs = [_prepared(x) for x in (q, k, v, log_decay, bonus, initial_state)]
        tiling = _Tiling(inputs[0], inputs[2], kernel_chunk)
        o, states, cumulative, query_cumulative, scores = _forward(*inputs, tiling)
        # A copy: a view would keep every chunk's state alive as long as the final state.
        final_state = states[:, -1].reshape(q.shape[0], q.shape[1], *states.shape[2:]).clone()
        ctx.save_for_backward(*inputs, cumulative, query_cumulative, scores)
        ctx.tiling, ctx.dtypes = tiling, dtypes
        ctx.set_materialize_grads(False)
        return o.to(q.dtype), final_state.to(q.dtype)

    @staticmethod
    def backward(ctx, do, final_grad):
        saved = ctx.saved_tensors
        q = saved[0]
        if do is None:
            do = torch.zeros(*q.shape[:3], ctx.tiling.value_width, device=q.device, dtype=q.dtype)
        do = _prepared(do)
        final_grad = _prepared(final_grad)
        grads = _backward(saved, do, final_grad, ctx.tiling, ctx.needs_input_grad[3])
        grads = [
            None if g is None else g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)
        ]
        return (*grads, None)
