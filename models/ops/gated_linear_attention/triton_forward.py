"""The forward Triton kernels of chunked gated linear attention (the design: triton.py).

Layouts (all contiguous, batch and heads flattened to one axis "bh"):
    q, k, cumulative decays G, Gq: (bh, L, K);  v, o: (bh, L, V)
    scores A: (bh, L, BT), row t holding the weights of the keys of t's own chunk (column s =
        position in the chunk); only entries with s <= t are written, readers mask the rest
    states: (bh, n_chunks + 1, K, V) float32: the state entering each chunk, then the final one
G is the inclusive cumulative log decay counted from the chunk's start; Gq is the query's (G for
GLA; for RWKV-6, whose query sees the state before this step's decay, the exclusive G - log a).

DOT is the dtype of the operands of the products with states (float32, or the inputs' 16-bit
dtype on CUDA); PRECISION the tl.dot precision of float32 operands (triton.py says which).

Every decay factor is exp(min(x, 0)) of an x that is a later G minus an earlier one, so <= 0
wherever the factor counts: the clamp changes nothing there but keeps padded rows and masked
pairs (whose x may be huge and positive) finite, so their products are 0, never inf * 0 = nan.
Loads, stores and exponentials are written out in each kernel rather than in helpers: a nested
@triton.jit call costs about a millisecond in the interpreter, where the tests run.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def chunk_cumulative_decay_kernel(
    log_decay,
    cumulative,
    query_cumulative,
    L,
    K: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    EXCLUSIVE: tl.constexpr,
):
    """Grid (n_chunks, cdiv(K, BK), bh). cumulative[t] = sum of log_decay over the chunk's rows
    up to t (float32); with EXCLUSIVE also query_cumulative = cumulative - log_decay."""
    i_t, i_k, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    start = i_bh.to(tl.int64) * L * K  # (64-bit: bh * L * K may pass 2^31; offsets below not)
    log_decay += start
    cumulative += start
    query_cumulative += start
    rows = i_t * BT + tl.arange(0, BT)
    cols = i_k * BK + tl.arange(0, BK)
    at = rows[:, None] * K + cols[None, :]
    mask = (rows < L)[:, None] & (cols < K)[None, :]
    step = tl.load(log_decay + at, mask=mask, other=0.0).to(tl.float32)
    total = tl.cumsum(step, axis=0)
    tl.store(cumulative + at, total, mask=mask)
    if EXCLUSIVE:
        tl.store(query_cumulative + at, total - step, mask=mask)


@triton.jit
def chunk_states_kernel(
    k,
    v,
    cumulative,
    initial_state,
    states,
    L,
    NT,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    HAS_INITIAL: tl.constexpr,
    DOT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (cdiv(K, BK), cdiv(V, BV), bh): one (BK, BV) block of the state per program, kept
    in registers while the program walks the NT chunks in order,
        S <- diag(exp(G_last)) S + (k * exp(G_last - G))^T v,
    storing the state entering every chunk and, at index NT, the final state."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bh = i_bh.to(tl.int64)
    k += bh * L * K
    cumulative += bh * L * K
    v += bh * L * V
    initial_state += bh * K * V
    states += bh * (NT + 1) * K * V
    o_t = tl.arange(0, BT)
    kcols = i_k * BK + tl.arange(0, BK)
    vcols = i_v * BV + tl.arange(0, BV)
    k_ok, v_ok = kcols < K, vcols < V
    state_at = kcols[:, None] * V + vcols[None, :]
    state_mask = k_ok[:, None] & v_ok[None, :]
    key_at = o_t[:, None] * K + kcols[None, :]
    value_at = o_t[:, None] * V + vcols[None, :]
    if HAS_INITIAL:
        state = tl.load(initial_state + state_at, mask=state_mask, other=0.0).to(tl.float32)
    else:
        state = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(0, NT):
        tl.store(states + i_t * K * V + state_at, state, mask=state_mask)
        row_ok = (i_t * BT + o_t < L)[:, None]
        key_mask = row_ok & k_ok[None, :]
        keys = tl.load(k + i_t * BT * K + key_at, mask=key_mask, other=0.0).to(tl.float32)
        values = tl.load(v + i_t * BT * V + value_at, mask=row_ok & v_ok[None, :], other=0.0)
        if HAS_DECAY:
            last = tl.minimum(i_t * BT + BT, L) - 1
            g_last = tl.load(cumulative + last * K + kcols, mask=k_ok, other=0.0)
            g = tl.load(cumulative + i_t * BT * K + key_at, mask=key_mask, other=0.0)
            keys = keys * tl.exp(tl.minimum(g_last[None, :] - g, 0.0))
            state = state * tl.exp(g_last)[:, None]
        state += tl.dot(tl.trans(keys).to(DOT), values.to(DOT), input_precision=PRECISION)
    tl.store(states + NT * K * V + state_at, state, mask=state_mask)


@triton.jit
def intra_chunk_scores_kernel(
    q,
    k,
    cumulative,
    query_cumulative,
    bonus,
    scores,
    L,
    H,
    K: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
    BK: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    HAS_BONUS: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (n_chunks * BT / BC, bh): the scores of one band of BC query rows.

    A[t, s] = sum_k q_t k_s exp(Gq_t - G_s) for s < t in the chunk; at s = t, q_t . k_t (GLA) or
    q_t . (u * k_t) (RWKV-6, u = bonus). The keys of the earlier bands all at once by tl.dot,
    with the decay split at the last row r of the previous band: exp(Gq_t - G_r) for the
    queries and exp(G_r - G_s) for the keys, s <= r <= t, both <= 1. The band's own (BC, BC)
    tile pair by pair, each exponent Gq_t - G_s formed before exp, BK key channels at a time.
    Products in float32 (at tf32 precision for 16-bit inputs), as fla keeps the scores.
    """
    NC: tl.constexpr = BT // BC
    NK: tl.constexpr = (K + BK - 1) // BK
    i_band, i_bh = tl.program_id(0), tl.program_id(1)
    chunk_start = (i_band // NC) * BT
    band = i_band % NC
    first = chunk_start + band * BC
    if first >= L:
        return
    bh = i_bh.to(tl.int64)
    q += bh * L * K
    k += bh * L * K
    cumulative += bh * L * K
    query_cumulative += bh * L * K
    scores += bh * L * BT
    o_c = tl.arange(0, BC)
    o_t = tl.arange(0, BT)
    rows = first + o_c
    row_ok = rows < L
    chunk_rows = chunk_start + o_t
    earlier = chunk_rows < first
    split = tl.maximum(first - 1, chunk_start)  # (unused by band 0, which has no earlier keys)

    before = tl.zeros([BC, BT], dtype=tl.float32)
    tile = tl.zeros([BC, BC], dtype=tl.float32)
    own = tl.zeros([BC], dtype=tl.float32)  # RWKV-6's q_t . (u * k_t)
    for i_k in range(0, NK):
        kcols = i_k * BK + tl.arange(0, BK)
        k_ok = kcols < K
        band_at = rows[:, None] * K + kcols[None, :]
        band_mask = row_ok[:, None] & k_ok[None, :]
        chunk_at = chunk_rows[:, None] * K + kcols[None, :]
        earlier_mask = earlier[:, None] & k_ok[None, :]
        queries = tl.load(q + band_at, mask=band_mask, other=0.0).to(tl.float32)
        keys = tl.load(k + band_at, mask=band_mask, other=0.0).to(tl.float32)
        keys_before = tl.load(k + chunk_at, mask=earlier_mask, other=0.0).to(tl.float32)
        if HAS_DECAY:
            gq = tl.load(query_cumulative + band_at, mask=band_mask, other=0.0)
            g = tl.load(cumulative + band_at, mask=band_mask, other=0.0)
            g_before = tl.load(cumulative + chunk_at, mask=earlier_mask, other=0.0)
            g_split = tl.load(cumulative + split * K + kcols, mask=k_ok, other=0.0)
            queries_split = queries * tl.exp(tl.minimum(gq - g_split[None, :], 0.0))
            keys_before = keys_before * tl.exp(tl.minimum(g_split[None, :] - g_before, 0.0))
            before += tl.dot(queries_split, tl.trans(keys_before), input_precision=PRECISION)
            pair_decay = tl.exp(tl.minimum(gq[:, None, :] - g[None, :, :], 0.0))
            tile += tl.sum(queries[:, None, :] * keys[None, :, :] * pair_decay, axis=2)
        else:
            before += tl.dot(queries, tl.trans(keys_before), input_precision=PRECISION)
            tile += tl.dot(queries, tl.trans(keys), input_precision=PRECISION)
        if HAS_BONUS:
            u = tl.load(bonus + (i_bh % H) * K + kcols, mask=k_ok, other=0.0).to(tl.float32)
            own += tl.sum(queries * u[None, :] * keys, axis=1)

    if HAS_BONUS:
        tile = tl.where(o_c[:, None] > o_c[None, :], tile, 0.0)
        tile += tl.where(o_c[:, None] == o_c[None, :], own[:, None], 0.0)
    else:
        tile = tl.where(o_c[:, None] >= o_c[None, :], tile, 0.0)
    score_rows = scores + rows[:, None] * BT
    tl.store(score_rows + o_t[None, :], before, mask=row_ok[:, None] & earlier[None, :])
    tl.store(score_rows + band * BC + o_c[None, :], tile, mask=row_ok[:, None])


@triton.jit
def chunk_output_kernel(
    q,
    v,
    query_cumulative,
    states,
    scores,
    o,
    L,
    NT,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    DOT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (cdiv(V, BV), NT, bh): o = (q * exp(Gq)) @ S_entering + A @ v for one chunk and one
    (BT, BV) block of the output."""
    NK: tl.constexpr = (K + BK - 1) // BK
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bh = i_bh.to(tl.int64)
    q += bh * L * K
    query_cumulative += bh * L * K
    v += bh * L * V
    o += bh * L * V
    scores += bh * L * BT
    states += (bh * (NT + 1) + i_t) * K * V
    o_t = tl.arange(0, BT)
    rows = i_t * BT + o_t
    row_ok = rows < L
    vcols = i_v * BV + tl.arange(0, BV)
    v_ok = vcols < V
    out = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(0, NK):
        kcols = i_k * BK + tl.arange(0, BK)
        k_ok = kcols < K
        key_at = rows[:, None] * K + kcols[None, :]
        key_mask = row_ok[:, None] & k_ok[None, :]
        queries = tl.load(q + key_at, mask=key_mask, other=0.0).to(tl.float32)
        if HAS_DECAY:
            gq = tl.load(query_cumulative + key_at, mask=key_mask, other=0.0)
            queries = queries * tl.exp(tl.minimum(gq, 0.0))
        state_at = states + kcols[:, None] * V + vcols[None, :]
        state = tl.load(state_at, mask=k_ok[:, None] & v_ok[None, :], other=0.0)
        out += tl.dot(queries.to(DOT), state.to(DOT), input_precision=PRECISION)
    score_at = scores + rows[:, None] * BT + o_t[None, :]
    causal = row_ok[:, None] & (o_t[:, None] >= o_t[None, :])
    weights = tl.load(score_at, mask=causal, other=0.0)
    value_at = rows[:, None] * V + vcols[None, :]
    value_mask = row_ok[:, None] & v_ok[None, :]
    values = tl.load(v + value_at, mask=value_mask, other=0.0).to(tl.float32)
    out += tl.dot(weights.to(DOT), values.to(DOT), input_precision=PRECISION)
    tl.store(o + value_at, out.to(o.dtype.element_ty), mask=value_mask)
