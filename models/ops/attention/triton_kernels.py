"""The Triton kernels of the attention op's `triton` backend; the design note, the launch
parameters and the autograd Function are in models/ops/attention/triton.py.

Conventions shared by every kernel here:

- q, k: (B, H, L, E); v, o, do: (B, H, L, Ev); each with unit stride along its last axis and any
  other strides (passed as stride_b, stride_h, stride_l). lse, delta: (B, H, L) float32,
  contiguous. key_bias: (B, L) float32, 0 for a real key and -inf for a padding key,
  contiguous: added to the scores, so padding costs one (BLOCK_N,) load per tile.
- Grids are (tiles along L, H, B): program_id(1) is the head, program_id(2) the batch row.
- Scores live in the log2 domain: s = q.k * sm_scale * log2(e), so the softmax uses exp2, and
  the stored lse is log2(sum_j exp2(s_j)).
- KIND (constexpr): 0 full, 1 sliding window, 2 blocks. The runtime tuple
  `pattern = (window, block_size, look_back (0/1), n_global)` holds the rest, so another width
  compiles nothing; `rng = (seed, b * H + h, dropout_p, 1 / (1 - dropout_p))` the dropout.
- Tiles are upcast to float32 before tl.dot where the query tile is float32 (float32 inputs,
  and the interpreter, whose bf16 arithmetic is wrong), with input_precision="ieee" so float32
  is not silently TF32 on GPU; bf16 / fp16 tiles go to tl.dot as they are. Accumulation is
  always float32.
- Runtime values travel in tuples (fewer arguments); constexprs are passed one by one, since a
  tuple loses constexpr-ness when compiled.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Running maximum before any key is seen: finite, so a row whose keys are all masked (-inf)
# computes exp2(-inf - MAX_START) = 0, never -inf - -inf = NaN; its lse stays MAX_START.
MAX_START = tl.constexpr(-1.0e30)


@triton.jit
def _load_rows(base, rows, stride_l, length, width: tl.constexpr, BLOCK_W: tl.constexpr):
    """The (rows, BLOCK_W) tile of a (length, width) slab with row stride stride_l; zeros
    outside it."""
    cols = tl.arange(0, BLOCK_W)
    mask = (rows[:, None] < length) & (cols[None, :] < width)
    return tl.load(base + rows[:, None] * stride_l + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _store_rows(base, rows, stride_l, length, width: tl.constexpr, value):
    cols = tl.arange(0, value.shape[1])
    mask = (rows[:, None] < length) & (cols[None, :] < width)
    tl.store(base + rows[:, None] * stride_l + cols[None, :], value, mask=mask)


@triton.jit
def _allowed(rows, cols, pattern, KIND: tl.constexpr, CAUSAL: tl.constexpr):
    """The pattern (models/ops/attention/pattern.py) at query positions `rows` and key
    positions `cols` (broadcastable int tensors, both >= 0) -> bool; padding not included."""
    window, block_size, look_back, n_global = pattern
    if KIND == 1:
        offset = rows - cols
        ok = (offset <= window) & (offset >= -window)
    elif KIND == 2:
        lag = rows // block_size - cols // block_size
        ok = (lag == 0) | ((lag == 1) & (look_back != 0))
    else:
        ok = (rows >= 0) & (cols >= 0)  # all True, in the broadcast shape
    if KIND != 0:
        ok = ok | (cols < n_global)
    if CAUSAL:
        ok = ok & (cols <= rows)
    return ok


@triton.jit
def _dropout_keep(rng, rows, cols):
    """Whether dropout keeps the weight of (query rows, key cols): one Philox draw per pair, a
    pure function of (seed, b * H + h, row, col), so the backward draws the forward's mask
    again in any tile shape. rows, cols: broadcastable int32 -> bool of their shape."""
    seed, bh, dropout_p, _ = rng
    row_tile = rows + cols * 0
    col_tile = cols + rows * 0
    zero = row_tile * 0
    bits, _, _, _ = tl.philox(seed, col_tile, zero + bh, row_tile, zero)
    return tl.uint_to_uniform_float(bits) >= dropout_p


@triton.jit
def _split_range(lo, hi, in_lo, in_hi, start, BLOCK: tl.constexpr):
    """Tiles of BLOCK positions, at multiples of BLOCK, that cover [lo, hi), from `start` (a
    multiple of BLOCK) on. [in_lo, in_hi) is where the pattern allows every pair. Returns
    (first, inner_lo, inner_hi): tiles in [first, inner_lo) and [inner_hi, hi) need the
    pattern's element mask, tiles in [inner_lo, inner_hi) do not."""
    first = tl.maximum((lo // BLOCK) * BLOCK, start)
    last = ((hi + BLOCK - 1) // BLOCK) * BLOCK
    inner_lo = ((tl.maximum(in_lo, 0) + BLOCK - 1) // BLOCK) * BLOCK
    inner_lo = tl.minimum(tl.maximum(inner_lo, first), last)
    inner_hi = (tl.maximum(in_hi, 0) // BLOCK) * BLOCK
    inner_hi = tl.minimum(tl.maximum(inner_hi, inner_lo), last)
    return first, inner_lo, inner_hi


@triton.jit
def _keys_of_queries(q_lo, q_hi, length, pattern, KIND: tl.constexpr, CAUSAL: tl.constexpr):
    """For queries [q_lo, q_hi): keys [lo, hi) that some of them may see and [in_lo, in_hi)
    that all of them may see, by the local pattern (global keys are handled apart)."""
    window, block_size, look_back, _ = pattern
    q_last = q_hi - 1
    lo = q_lo * 0
    hi = lo + length
    in_lo = lo
    in_hi = hi
    if KIND == 1:
        lo = tl.maximum(q_lo - window, 0)
        hi = tl.minimum(q_last + window + 1, length)
        in_lo = q_last - window
        in_hi = q_lo + window + 1
    elif KIND == 2:
        lo = tl.maximum((q_lo // block_size - look_back) * block_size, 0)
        hi = tl.minimum((q_last // block_size + 1) * block_size, length)
        in_lo = (q_last // block_size - look_back) * block_size
        in_hi = (q_lo // block_size + 1) * block_size
    if CAUSAL:
        hi = tl.minimum(hi, q_last + 1)
        in_hi = tl.minimum(in_hi, q_lo + 1)
    return lo, hi, in_lo, in_hi


@triton.jit
def _queries_of_keys(k_lo, k_hi, length, pattern, KIND: tl.constexpr, CAUSAL: tl.constexpr):
    """For keys [k_lo, k_hi): queries [lo, hi) that may see some of them and [in_lo, in_hi)
    that may see all of them, by the local pattern (global keys are handled apart)."""
    window, block_size, look_back, _ = pattern
    k_last = k_hi - 1
    lo = k_lo * 0
    hi = lo + length
    in_lo = lo
    in_hi = hi
    if KIND == 1:
        lo = tl.maximum(k_lo - window, 0)
        hi = tl.minimum(k_last + window + 1, length)
        in_lo = k_last - window
        in_hi = k_lo + window + 1
    elif KIND == 2:
        lo = (k_lo // block_size) * block_size
        hi = tl.minimum((k_last // block_size + 1 + look_back) * block_size, length)
        in_lo = (k_last // block_size) * block_size
        in_hi = (k_lo // block_size + 1 + look_back) * block_size
    if CAUSAL:
        lo = tl.maximum(lo, k_lo)
        in_lo = tl.maximum(in_lo, k_last)
    return lo, hi, in_lo, in_hi


@triton.jit
def _query_tile(CAUSAL: tl.constexpr):
    """This program's query tile. Causal: the last tiles, which see the most keys, start first,
    so that no long program is left running alone at the end of the grid."""
    if CAUSAL:
        return tl.num_programs(0) - 1 - tl.program_id(0)
    return tl.program_id(0)


@triton.jit
def _head_offset(batch, head, stride_b, stride_h):
    return batch.to(tl.int64) * stride_b + head.to(tl.int64) * stride_h


# --------------------------------------------------------------------------------------------
# forward


@triton.jit
def _forward_tiles(
    acc, l_i, m_i, q, rows, keys, start, end, scale, pattern, rng,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_N: tl.constexpr, KIND: tl.constexpr,
    CAUSAL: tl.constexpr, MASK: tl.constexpr, DROPOUT: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Online-softmax update of (acc, l_i, m_i) by the key tiles starting in [start, end).
    keys = (k_base, stride_kl, v_base, stride_vl, bias_row, length)."""
    # The loads are written out, not helpers: the interpreter's cost is per call.
    k_base, stride_kl, v_base, stride_vl, bias_row, length = keys
    e_cols = tl.arange(0, q.shape[1])
    ev_cols = tl.arange(0, acc.shape[1])
    for tile in range(start, end, BLOCK_N):
        tile = tl.multiple_of(tile, BLOCK_N)
        cols = tile + tl.arange(0, BLOCK_N)
        in_seq = cols < length
        k = tl.load(
            k_base + cols[:, None] * stride_kl + e_cols[None, :],
            mask=in_seq[:, None] & (e_cols[None, :] < E),
            other=0.0,
        ).to(q.dtype)
        bias = tl.load(bias_row + cols, mask=in_seq, other=float("-inf"))
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        scores = scores * scale + bias[None, :]
        if MASK:
            allowed = _allowed(rows[:, None], cols[None, :], pattern, KIND, CAUSAL)
            scores = tl.where(allowed, scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        p = tl.math.exp2(scores - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        if DROPOUT:
            p = tl.where(_dropout_keep(rng, rows[:, None], cols[None, :]), p * rng[3], 0.0)
        v = tl.load(
            v_base + cols[:, None] * stride_vl + ev_cols[None, :],
            mask=in_seq[:, None] & (ev_cols[None, :] < EV),
            other=0.0,
        ).to(q.dtype)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attention_forward_kernel(
    Q, K, V, KEY_BIAS, OUT, LSE,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    stride_vb, stride_vh, stride_vl, stride_ob, stride_oh, stride_ol,
    heads, length, scale, window, block_size, look_back, n_global, seed, dropout_p, keep_scale,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_EV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, KIND: tl.constexpr, CAUSAL: tl.constexpr,
    DROPOUT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_M queries of one (batch, head) against the key tiles their pattern
    reaches. Writes OUT (BLOCK_M, Ev) and LSE (BLOCK_M,). scale = sm_scale * log2(e)."""
    q_lo = _query_tile(CAUSAL) * BLOCK_M
    head = tl.program_id(1)
    batch = tl.program_id(2)
    bh = batch * heads + head
    rows = q_lo + tl.arange(0, BLOCK_M)
    q_base = Q + _head_offset(batch, head, stride_qb, stride_qh)
    q = _load_rows(q_base, rows, stride_ql, length, E, BLOCK_E)
    if UPCAST:
        q = q.to(tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_EV), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    m_i = tl.full((BLOCK_M,), MAX_START, tl.float32)

    keys = (
        K + _head_offset(batch, head, stride_kb, stride_kh), stride_kl,
        V + _head_offset(batch, head, stride_vb, stride_vh), stride_vl,
        KEY_BIAS + batch.to(tl.int64) * length, length,
    )  # fmt: skip
    pattern = (window, block_size, look_back, n_global)
    rng = (seed, bh, dropout_p, keep_scale)
    q_hi = tl.minimum(q_lo + BLOCK_M, length)
    global_end = ((n_global + BLOCK_N - 1) // BLOCK_N) * BLOCK_N
    global_stop = global_end
    if CAUSAL:
        global_stop = tl.minimum(global_end, q_hi)
    lo, hi, in_lo, in_hi = _keys_of_queries(q_lo, q_hi, length, pattern, KIND, CAUSAL)
    first, inner_lo, inner_hi = _split_range(lo, hi, in_lo, in_hi, global_end, BLOCK_N)
    # The tiles of the global keys (seen by every query), then the local pattern's tiles:
    # masked edge, unmasked inside, masked edge. Nothing outside these ranges is read.
    acc, l_i, m_i = _forward_tiles(
        acc, l_i, m_i, q, rows, keys, 0, global_stop, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _forward_tiles(
        acc, l_i, m_i, q, rows, keys, first, inner_lo, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _forward_tiles(
        acc, l_i, m_i, q, rows, keys, inner_lo, inner_hi, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, False, DROPOUT, PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _forward_tiles(
        acc, l_i, m_i, q, rows, keys, inner_hi, hi, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip

    # A row with no allowed key (a padded query) gets zeros and a finite lse.
    l_safe = tl.where(l_i > 0.0, l_i, 1.0)
    out = (acc / l_safe[:, None]).to(OUT.dtype.element_ty)
    _store_rows(OUT + _head_offset(batch, head, stride_ob, stride_oh), rows, stride_ol, length,
                EV, out)  # fmt: skip
    lse_row = LSE + bh.to(tl.int64) * length
    tl.store(lse_row + rows, m_i + tl.math.log2(l_safe), mask=rows < length)


# --------------------------------------------------------------------------------------------
# backward


@triton.jit
def attention_backward_delta_kernel(
    OUT, DO, DELTA, stride_ob, stride_oh, stride_ol, stride_db, stride_dh, stride_dl,
    heads, length, EV: tl.constexpr, BLOCK_EV: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """DELTA = rowsum(dO * O) for BLOCK_M rows: the softmax backward's correction term
    (dropout included: dO . O = sum_j P_ij dP_ij also with the dropped weights)."""
    head = tl.program_id(1)
    batch = tl.program_id(2)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    o_base = OUT + _head_offset(batch, head, stride_ob, stride_oh)
    do_base = DO + _head_offset(batch, head, stride_db, stride_dh)
    o = _load_rows(o_base, rows, stride_ol, length, EV, BLOCK_EV).to(tl.float32)
    do = _load_rows(do_base, rows, stride_dl, length, EV, BLOCK_EV).to(tl.float32)
    delta_row = DELTA + (batch * heads + head).to(tl.int64) * length
    tl.store(delta_row + rows, tl.sum(o * do, 1), mask=rows < length)


@triton.jit
def _key_grad_tiles(
    dk, dv, k, v, key_bias, cols, queries, start, end, scale, pattern, rng,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_M: tl.constexpr, KIND: tl.constexpr,
    CAUSAL: tl.constexpr, MASK: tl.constexpr, DROPOUT: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulates dK, dV of one key tile over the query tiles starting in [start, end), on
    transposed scores (keys x queries) so that every product is a plain tl.dot.
    queries = (q_base, stride_ql, do_base, stride_dl, lse_row, delta_row, length)."""
    # The loads are written out, not helpers: the interpreter's cost is per call.
    q_base, stride_ql, do_base, stride_dl, lse_row, delta_row, length = queries
    e_cols = tl.arange(0, k.shape[1])
    ev_cols = tl.arange(0, v.shape[1])
    for tile in range(start, end, BLOCK_M):
        tile = tl.multiple_of(tile, BLOCK_M)
        rows = tile + tl.arange(0, BLOCK_M)
        in_seq = rows < length
        q = tl.load(
            q_base + rows[:, None] * stride_ql + e_cols[None, :],
            mask=in_seq[:, None] & (e_cols[None, :] < E),
            other=0.0,
        ).to(k.dtype)
        do = tl.load(
            do_base + rows[:, None] * stride_dl + ev_cols[None, :],
            mask=in_seq[:, None] & (ev_cols[None, :] < EV),
            other=0.0,
        ).to(k.dtype)
        lse = tl.load(lse_row + rows, mask=in_seq, other=0.0)
        delta = tl.load(delta_row + rows, mask=in_seq, other=0.0)
        scores_t = tl.dot(k, tl.trans(q), input_precision=PRECISION)
        scores_t = scores_t * scale + key_bias[:, None]
        if MASK:
            allowed = _allowed(rows[None, :], cols[:, None], pattern, KIND, CAUSAL)
            scores_t = tl.where(allowed, scores_t, float("-inf"))
        p_t = tl.math.exp2(scores_t - lse[None, :])
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        if DROPOUT:
            keep = _dropout_keep(rng, rows[None, :], cols[:, None])
            dv = tl.dot(
                tl.where(keep, p_t * rng[3], 0.0).to(k.dtype), do, dv, input_precision=PRECISION
            )
            dp_t = tl.where(keep, dp_t * rng[3], 0.0)
        else:
            dv = tl.dot(p_t.to(k.dtype), do, dv, input_precision=PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(k.dtype), q, dk, input_precision=PRECISION)
    return dk, dv


@triton.jit
def attention_backward_key_kernel(
    Q, K, V, KEY_BIAS, DO, LSE, DELTA, DK, DV,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    stride_vb, stride_vh, stride_vl, stride_db, stride_dh, stride_dl,
    stride_dkb, stride_dkh, stride_dkl, stride_dvb, stride_dvh, stride_dvl,
    heads, length, sm_scale, scale, window, block_size, look_back, n_global, seed, dropout_p,
    keep_scale,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_EV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, KIND: tl.constexpr, CAUSAL: tl.constexpr,
    DROPOUT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: dK, dV of BLOCK_N keys of one (batch, head), over the query tiles that may
    see them (every query tile when the key tile holds a global key)."""
    k_lo = tl.program_id(0) * BLOCK_N
    head = tl.program_id(1)
    batch = tl.program_id(2)
    bh = batch * heads + head
    cols = k_lo + tl.arange(0, BLOCK_N)
    k_base = K + _head_offset(batch, head, stride_kb, stride_kh)
    v_base = V + _head_offset(batch, head, stride_vb, stride_vh)
    k = _load_rows(k_base, cols, stride_kl, length, E, BLOCK_E)
    v = _load_rows(v_base, cols, stride_vl, length, EV, BLOCK_EV)
    if UPCAST:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    key_bias = tl.load(KEY_BIAS + batch.to(tl.int64) * length + cols, mask=cols < length,
                       other=float("-inf"))  # fmt: skip
    dk = tl.zeros((BLOCK_N, BLOCK_E), tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_EV), tl.float32)

    pattern = (window, block_size, look_back, n_global)
    rng = (seed, bh, dropout_p, keep_scale)
    k_hi = tl.minimum(k_lo + BLOCK_N, length)
    lo, hi, in_lo, in_hi = _queries_of_keys(k_lo, k_hi, length, pattern, KIND, CAUSAL)
    # A tile holding a global key is seen by every query (causal: by every later one): it visits
    # all those query tiles, each masked, since its other keys keep their local pattern.
    holds_global = k_lo < n_global
    all_from = 0
    if CAUSAL:
        all_from = k_lo
    lo = tl.where(holds_global, all_from, lo)
    hi = tl.where(holds_global, length, hi)
    in_lo = tl.where(holds_global, length, in_lo)
    in_hi = tl.where(holds_global, 0, in_hi)
    first, inner_lo, inner_hi = _split_range(lo, hi, in_lo, in_hi, 0, BLOCK_M)
    queries = (
        Q + _head_offset(batch, head, stride_qb, stride_qh), stride_ql,
        DO + _head_offset(batch, head, stride_db, stride_dh), stride_dl,
        LSE + bh.to(tl.int64) * length, DELTA + bh.to(tl.int64) * length, length,
    )  # fmt: skip
    dk, dv = _key_grad_tiles(
        dk, dv, k, v, key_bias, cols, queries, first, inner_lo, scale, pattern, rng,
        E, EV, BLOCK_M, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    dk, dv = _key_grad_tiles(
        dk, dv, k, v, key_bias, cols, queries, inner_lo, inner_hi, scale, pattern, rng,
        E, EV, BLOCK_M, KIND, CAUSAL, False, DROPOUT, PRECISION,
    )  # fmt: skip
    dk, dv = _key_grad_tiles(
        dk, dv, k, v, key_bias, cols, queries, inner_hi, hi, scale, pattern, rng,
        E, EV, BLOCK_M, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip

    dk_base = DK + _head_offset(batch, head, stride_dkb, stride_dkh)
    dv_base = DV + _head_offset(batch, head, stride_dvb, stride_dvh)
    _store_rows(dk_base, cols, stride_dkl, length, E, (dk * sm_scale).to(DK.dtype.element_ty))
    _store_rows(dv_base, cols, stride_dvl, length, EV, dv.to(DV.dtype.element_ty))


@triton.jit
def _query_grad_tiles(
    dq, q, do, lse, delta, rows, keys, start, end, scale, pattern, rng,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_N: tl.constexpr, KIND: tl.constexpr,
    CAUSAL: tl.constexpr, MASK: tl.constexpr, DROPOUT: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulates dQ of one query tile over the key tiles starting in [start, end).
    keys = (k_base, stride_kl, v_base, stride_vl, bias_row, length)."""
    # The loads are written out, not helpers: the interpreter's cost is per call.
    k_base, stride_kl, v_base, stride_vl, bias_row, length = keys
    e_cols = tl.arange(0, q.shape[1])
    ev_cols = tl.arange(0, do.shape[1])
    for tile in range(start, end, BLOCK_N):
        tile = tl.multiple_of(tile, BLOCK_N)
        cols = tile + tl.arange(0, BLOCK_N)
        in_seq = cols < length
        k = tl.load(
            k_base + cols[:, None] * stride_kl + e_cols[None, :],
            mask=in_seq[:, None] & (e_cols[None, :] < E),
            other=0.0,
        ).to(q.dtype)
        v = tl.load(
            v_base + cols[:, None] * stride_vl + ev_cols[None, :],
            mask=in_seq[:, None] & (ev_cols[None, :] < EV),
            other=0.0,
        ).to(q.dtype)
        bias = tl.load(bias_row + cols, mask=in_seq, other=float("-inf"))
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        scores = scores * scale + bias[None, :]
        if MASK:
            allowed = _allowed(rows[:, None], cols[None, :], pattern, KIND, CAUSAL)
            scores = tl.where(allowed, scores, float("-inf"))
        p = tl.math.exp2(scores - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        if DROPOUT:
            dp = tl.where(_dropout_keep(rng, rows[:, None], cols[None, :]), dp * rng[3], 0.0)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(q.dtype), k, dq, input_precision=PRECISION)
    return dq


@triton.jit
def attention_backward_query_kernel(
    Q, K, V, KEY_BIAS, DO, LSE, DELTA, DQ,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl,
    stride_vb, stride_vh, stride_vl, stride_db, stride_dh, stride_dl,
    stride_dqb, stride_dqh, stride_dql,
    heads, length, sm_scale, scale, window, block_size, look_back, n_global, seed, dropout_p,
    keep_scale,
    E: tl.constexpr, EV: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_EV: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, KIND: tl.constexpr, CAUSAL: tl.constexpr,
    DROPOUT: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: dQ of BLOCK_M queries of one (batch, head), over the key tiles of the
    forward's ranges."""
    q_lo = _query_tile(CAUSAL) * BLOCK_M
    head = tl.program_id(1)
    batch = tl.program_id(2)
    bh = batch * heads + head
    rows = q_lo + tl.arange(0, BLOCK_M)
    q = _load_rows(Q + _head_offset(batch, head, stride_qb, stride_qh), rows, stride_ql, length,
                   E, BLOCK_E)  # fmt: skip
    do = _load_rows(DO + _head_offset(batch, head, stride_db, stride_dh), rows, stride_dl,
                    length, EV, BLOCK_EV)  # fmt: skip
    if UPCAST:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    lse = tl.load(LSE + bh.to(tl.int64) * length + rows, mask=rows < length, other=0.0)
    delta = tl.load(DELTA + bh.to(tl.int64) * length + rows, mask=rows < length, other=0.0)
    dq = tl.zeros((BLOCK_M, BLOCK_E), tl.float32)

    keys = (
        K + _head_offset(batch, head, stride_kb, stride_kh), stride_kl,
        V + _head_offset(batch, head, stride_vb, stride_vh), stride_vl,
        KEY_BIAS + batch.to(tl.int64) * length, length,
    )  # fmt: skip
    pattern = (window, block_size, look_back, n_global)
    rng = (seed, bh, dropout_p, keep_scale)
    q_hi = tl.minimum(q_lo + BLOCK_M, length)
    global_end = ((n_global + BLOCK_N - 1) // BLOCK_N) * BLOCK_N
    global_stop = global_end
    if CAUSAL:
        global_stop = tl.minimum(global_end, q_hi)
    lo, hi, in_lo, in_hi = _keys_of_queries(q_lo, q_hi, length, pattern, KIND, CAUSAL)
    first, inner_lo, inner_hi = _split_range(lo, hi, in_lo, in_hi, global_end, BLOCK_N)
    dq = _query_grad_tiles(
        dq, q, do, lse, delta, rows, keys, 0, global_stop, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    dq = _query_grad_tiles(
        dq, q, do, lse, delta, rows, keys, first, inner_lo, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    dq = _query_grad_tiles(
        dq, q, do, lse, delta, rows, keys, inner_lo, inner_hi, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, False, DROPOUT, PRECISION,
    )  # fmt: skip
    dq = _query_grad_tiles(
        dq, q, do, lse, delta, rows, keys, inner_hi, hi, scale, pattern, rng,
        E, EV, BLOCK_N, KIND, CAUSAL, True, DROPOUT, PRECISION,
    )  # fmt: skip
    dq_base = DQ + _head_offset(batch, head, stride_dqb, stride_dqh)
    _store_rows(dq_base, rows, stride_dql, length, E, (dq * sm_scale).to(DQ.dtype.element_ty))


@triton.jit
def dropout_keep_kernel(KEEP, length, seed, dropout_p, BLOCK: tl.constexpr):
    """KEEP (B * H, L, L) int8: the dropout mask the attention kernels draw for `seed` (tests
    rebuild the reference with it). Grid (query tiles, key tiles, B * H)."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    bh = tl.program_id(2)
    keep = _dropout_keep((seed, bh, dropout_p, 0.0), rows[:, None], cols[None, :])
    mask = (rows[:, None] < length) & (cols[None, :] < length)
    offsets = (bh.to(tl.int64) * length + rows[:, None]) * length + cols[None, :]
    tl.store(KEEP + offsets, keep.to(tl.int8), mask=mask)
