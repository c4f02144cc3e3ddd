"""The backward Triton kernels of chunked gated linear attention (the design: triton.py; the
layouts and the decay-factor clamp: triton_forward.py). Besides those: do, dv: (bh, L, V);
dscores dA: (bh, L, BT) with dA[t, s] = do_t . v_s for s <= t in t's chunk, 0 above; dstates:
(bh, n_chunks, K, V) float32, the gradient of the state leaving each chunk.

The decay gradient. Every term of the outputs that holds q_t carries exp(+Gq_t), every term that
holds k_s carries exp(-G_s), and the state leaving chunk c carries exp(+G_last) on all of it:
    d/dGq_t = q_t dq_t,   d/dG_s = -k_s dk_s,   d/dG_last = rowsum(dS_{c+1} * S_{c+1})
(products elementwise over the key channel). G_t sums the chunk's log decays up to t, Gq_t those
before t for RWKV-6, G_last all of them; so with x_t = q_t dq_t - k_t dk_t
    GLA:    dlog_decay_r = sum_{t >= r in the chunk} x_t + rowsum(dS_{c+1} * S_{c+1})
    RWKV-6: the same minus q_r dq'_r, where dq' leaves out the bonus's decay-free term
            u k_t dA[t, t] (its share q_t u k_t dA[t, t] of q dq and of k dk cancels in x).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def chunk_state_gradients_kernel(
    q,
    do,
    cumulative,
    query_cumulative,
    final_state_grad,
    dstates,
    initial_state_grad,
    L,
    NT,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    HAS_FINAL_GRAD: tl.constexpr,
    HAS_INITIAL: tl.constexpr,
    DOT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (cdiv(K, BK), cdiv(V, BV), bh): the state gradient walked backwards over the chunks
    in registers, dS_c = diag(exp(G_last)) dS_{c+1} + (q * exp(Gq))^T do, storing the gradient
    of the state leaving each chunk, and dS_0 (the initial state's gradient) at the end."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bh = i_bh.to(tl.int64)
    q += bh * L * K
    cumulative += bh * L * K
    query_cumulative += bh * L * K
    do += bh * L * V
    final_state_grad += bh * K * V
    initial_state_grad += bh * K * V
    dstates += bh * NT * K * V
    o_t = tl.arange(0, BT)
    kcols = i_k * BK + tl.arange(0, BK)
    vcols = i_v * BV + tl.arange(0, BV)
    k_ok, v_ok = kcols < K, vcols < V
    state_at = kcols[:, None] * V + vcols[None, :]
    state_mask = k_ok[:, None] & v_ok[None, :]
    key_at = o_t[:, None] * K + kcols[None, :]
    value_at = o_t[:, None] * V + vcols[None, :]
    if HAS_FINAL_GRAD:
        grad = tl.load(final_state_grad + state_at, mask=state_mask, other=0.0).to(tl.float32)
    else:
        grad = tl.zeros([BK, BV], dtype=tl.float32)
    for i_t in range(NT - 1, -1, -1):
        tl.store(dstates + i_t * K * V + state_at, grad, mask=state_mask)
        row_ok = (i_t * BT + o_t < L)[:, None]
        key_mask = row_ok & k_ok[None, :]
        queries = tl.load(q + i_t * BT * K + key_at, mask=key_mask, other=0.0).to(tl.float32)
        out_grad = tl.load(do + i_t * BT * V + value_at, mask=row_ok & v_ok[None, :], other=0.0)
        if HAS_DECAY:
            last = tl.minimum(i_t * BT + BT, L) - 1
            g_last = tl.load(cumulative + last * K + kcols, mask=k_ok, other=0.0)
            gq = tl.load(query_cumulative + i_t * BT * K + key_at, mask=key_mask, other=0.0)
            queries = queries * tl.exp(tl.minimum(gq, 0.0))
            grad = grad * tl.exp(g_last)[:, None]
        grad += tl.dot(tl.trans(queries).to(DOT), out_grad.to(DOT), input_precision=PRECISION)
    if HAS_INITIAL:
        at = initial_state_grad + state_at
        tl.store(at, grad.to(initial_state_grad.dtype.element_ty), mask=state_mask)


@triton.jit
def intra_chunk_score_gradients_kernel(
    v,
    do,
    dscores,
    L,
    V: tl.constexpr,
    BT: tl.constexpr,
    BV: tl.constexpr,
    DOT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (n_chunks, bh): dA = do v^T inside each chunk, lower triangle (diagonal included)."""
    NV: tl.constexpr = (V + BV - 1) // BV
    i_t, i_bh = tl.program_id(0), tl.program_id(1)
    bh = i_bh.to(tl.int64)
    v += bh * L * V
    do += bh * L * V
    dscores += bh * L * BT
    o_t = tl.arange(0, BT)
    rows = i_t * BT + o_t
    row_ok = rows < L
    grad = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(0, NV):
        vcols = i_v * BV + tl.arange(0, BV)
        value_at = rows[:, None] * V + vcols[None, :]
        value_mask = row_ok[:, None] & (vcols < V)[None, :]
        out_grad = tl.load(do + value_at, mask=value_mask, other=0.0)
        values = tl.load(v + value_at, mask=value_mask, other=0.0)
        grad += tl.dot(out_grad.to(DOT), tl.trans(values).to(DOT), input_precision=PRECISION)
    grad = tl.where(o_t[:, None] >= o_t[None, :], grad, 0.0)
    score_at = dscores + rows[:, None] * BT + o_t[None, :]
    tl.store(score_at, grad, mask=row_ok[:, None])


@triton.jit
def chunk_value_gradients_kernel(
    k,
    cumulative,
    scores,
    do,
    dstates,
    dv,
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
    """Grid (cdiv(V, BV), NT, bh): dv = A^T do + (k * exp(G_last - G)) dS_leaving."""
    NK: tl.constexpr = (K + BK - 1) // BK
    i_v, i_t, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bh = i_bh.to(tl.int64)
    k += bh * L * K
    cumulative += bh * L * K
    scores += bh * L * BT
    do += bh * L * V
    dv += bh * L * V
    dstates += (bh * NT + i_t) * K * V
    o_t = tl.arange(0, BT)
    rows = i_t * BT + o_t
    row_ok = rows < L
    vcols = i_v * BV + tl.arange(0, BV)
    v_ok = vcols < V
    score_at = scores + rows[:, None] * BT + o_t[None, :]
    weights = tl.load(score_at, mask=row_ok[:, None] & (o_t[:, None] >= o_t[None, :]), other=0.0)
    value_at = rows[:, None] * V + vcols[None, :]
    value_mask = row_ok[:, None] & v_ok[None, :]
    out_grad = tl.load(do + value_at, mask=value_mask, other=0.0).to(tl.float32)
    # At float32 accuracy whatever the inputs' dtype, as fla keeps it (tf32 would cost dv its
    # accuracy); tf32x3 gets it from the tensor cores.
    grad = tl.dot(tl.trans(weights), out_grad, input_precision="tf32x3")
    last = tl.minimum(i_t * BT + BT, L) - 1
    for i_k in range(0, NK):
        kcols = i_k * BK + tl.arange(0, BK)
        k_ok = kcols < K
        key_at = rows[:, None] * K + kcols[None, :]
        key_mask = row_ok[:, None] & k_ok[None, :]
        keys = tl.load(k + key_at, mask=key_mask, other=0.0).to(tl.float32)
        if HAS_DECAY:
            g_last = tl.load(cumulative + last * K + kcols, mask=k_ok, other=0.0)
            g = tl.load(cumulative + key_at, mask=key_mask, other=0.0)
            keys = keys * tl.exp(tl.minimum(g_last[None, :] - g, 0.0))
        state_at = dstates + kcols[:, None] * V + vcols[None, :]
        state_grad = tl.load(state_at, mask=k_ok[:, None] & v_ok[None, :], other=0.0)
        grad += tl.dot(keys.to(DOT), state_grad.to(DOT), input_precision=PRECISION)
    tl.store(dv + value_at, grad.to(dv.dtype.element_ty), mask=value_mask)


@triton.jit
def chunk_query_key_gradients_kernel(
    q,
    k,
    v,
    cumulative,
    query_cumulative,
    bonus,
    do,
    states,
    dstates,
    dscores,
    dq,
    dk,
    decay_terms,
    bonus_terms,
    bonus_grad_parts,
    L,
    H,
    NT,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BC: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    HAS_BONUS: tl.constexpr,
    DECAY_GRAD: tl.constexpr,
    DOT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Grid (cdiv(K, BK), n_chunks * BT / BC, bh): dq and dk of one band of BC rows and BK key
    channels,
        dq_t = sum_{s <= t} dA[t, s] k_s exp(Gq_t - G_s) + exp(Gq_t) (do_t S_entering^T)
        dk_s = sum_{t >= s} dA[t, s] q_t exp(Gq_t - G_s) + exp(G_last - G_s) (v_s dS_leaving^T)
    (s < t for RWKV-6, whose diagonal adds u k_t dA[t, t] to dq_t and u q_t dA[t, t] to dk_t).
    The other bands by tl.dot with the decay split between the bands, the band's own tile pair
    by pair, as in the forward, in float32; the states' terms in DOT operands. Also stores
    x = q dq - k dk (the decay gradient's terms) and RWKV-6's bonus share minus q dq (with
    DECAY_GRAD), and per-band sums of the bonus gradient.
    """
    NC: tl.constexpr = BT // BC
    NV: tl.constexpr = (V + BV - 1) // BV
    i_k, i_band, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_t = i_band // NC
    chunk_start = i_t * BT
    band = i_band % NC
    first = chunk_start + band * BC
    if first >= L:
        return
    bh = i_bh.to(tl.int64)
    for_keys = bh * L * K
    q += for_keys
    k += for_keys
    cumulative += for_keys
    query_cumulative += for_keys
    dq += for_keys
    dk += for_keys
    decay_terms += for_keys
    bonus_terms += for_keys
    v += bh * L * V
    do += bh * L * V
    dscores += bh * L * BT
    o_c = tl.arange(0, BC)
    o_t = tl.arange(0, BT)
    rows = first + o_c
    row_ok = rows < L
    chunk_rows = chunk_start + o_t
    earlier = chunk_rows < first
    later = (chunk_rows >= first + BC) & (chunk_rows < L)
    kcols = i_k * BK + tl.arange(0, BK)
    k_ok = kcols < K
    band_at = rows[:, None] * K + kcols[None, :]
    band_mask = row_ok[:, None] & k_ok[None, :]
    chunk_at = chunk_rows[:, None] * K + kcols[None, :]
    earlier_mask = earlier[:, None] & k_ok[None, :]
    later_mask = later[:, None] & k_ok[None, :]
    queries = tl.load(q + band_at, mask=band_mask, other=0.0).to(tl.float32)
    keys = tl.load(k + band_at, mask=band_mask, other=0.0).to(tl.float32)
    keys_before = tl.load(k + chunk_at, mask=earlier_mask, other=0.0).to(tl.float32)
    queries_after = tl.load(q + chunk_at, mask=later_mask, other=0.0).to(tl.float32)

    # dA in three pieces: this band's rows left of it, its columns below it, its own tile.
    band_rows = dscores + rows[:, None] * BT
    grad_before = tl.load(
        band_rows + o_t[None, :], mask=row_ok[:, None] & earlier[None, :], other=0.0
    )
    grad_after = tl.load(
        dscores + chunk_rows[:, None] * BT + band * BC + o_c[None, :],
        mask=later[:, None],
        other=0.0,
    )
    grad_own = tl.load(band_rows + band * BC + o_c[None, :], mask=row_ok[:, None], other=0.0)
    if HAS_BONUS:
        diagonal = tl.sum(tl.where(o_c[:, None] == o_c[None, :], grad_own, 0.0), axis=1)
        grad_own = tl.where(o_c[:, None] > o_c[None, :], grad_own, 0.0)

    if HAS_DECAY:
        g = tl.load(cumulative + band_at, mask=band_mask, other=0.0)
        gq = tl.load(query_cumulative + band_at, mask=band_mask, other=0.0)
        g_before = tl.load(cumulative + chunk_at, mask=earlier_mask, other=0.0)
        gq_after = tl.load(query_cumulative + chunk_at, mask=later_mask, other=0.0)
        # Split points: the last row of the previous band, and the last row of this one.
        split_before = tl.maximum(first - 1, chunk_start)
        split_after = tl.minimum(first + BC - 1, L - 1)
        key_start = cumulative + kcols
        g_split_before = tl.load(key_start + split_before * K, mask=k_ok, other=0.0)
        g_split_after = tl.load(key_start + split_after * K, mask=k_ok, other=0.0)
        keys_before = keys_before * tl.exp(tl.minimum(g_split_before[None, :] - g_before, 0.0))
        queries_after = queries_after * tl.exp(tl.minimum(gq_after - g_split_after[None, :], 0.0))
        query_grad = tl.dot(grad_before, keys_before, input_precision=PRECISION)
        query_grad *= tl.exp(tl.minimum(gq - g_split_before[None, :], 0.0))
        key_grad = tl.dot(tl.trans(grad_after), queries_after, input_precision=PRECISION)
        key_grad *= tl.exp(tl.minimum(g_split_after[None, :] - g, 0.0))
        # (t, s, channel) weights of the band's own tile, lower triangle only (grad_own).
        pair = grad_own[:, :, None] * tl.exp(tl.minimum(gq[:, None, :] - g[None, :, :], 0.0))
        query_grad += tl.sum(pair * keys[None, :, :], axis=1)
        key_grad += tl.sum(pair * queries[:, None, :], axis=0)
    else:
        query_grad = tl.dot(grad_before, keys_before, input_precision=PRECISION)
        key_grad = tl.dot(tl.trans(grad_after), queries_after, input_precision=PRECISION)
        query_grad += tl.dot(grad_own, keys, input_precision=PRECISION)
        key_grad += tl.dot(tl.trans(grad_own), queries, input_precision=PRECISION)

    if HAS_BONUS:
        u = tl.load(bonus + (i_bh % H) * K + kcols, mask=k_ok, other=0.0).to(tl.float32)
        weight = diagonal[:, None] * u[None, :]
        query_grad += weight * keys
        key_grad += weight * queries
        pair_product = diagonal[:, None] * queries * keys  # du_t = dA[t, t] q_t k_t
        own = pair_product * u[None, :]  # the bonus's share of both q dq and k dk
        part = bonus_grad_parts + (bh * tl.num_programs(1) + i_band) * K + kcols
        tl.store(part, tl.sum(pair_product, axis=0), mask=k_ok)

    # The state entering the chunk (dq) and the gradient of the state leaving it (dk).
    from_state = tl.zeros([BC, BK], dtype=tl.float32)
    from_state_grad = tl.zeros([BC, BK], dtype=tl.float32)
    entering = states + (bh * (NT + 1) + i_t) * K * V
    leaving_grad = dstates + (bh * NT + i_t) * K * V
    for i_v in range(0, NV):
        vcols = i_v * BV + tl.arange(0, BV)
        v_ok = vcols < V
        value_at = rows[:, None] * V + vcols[None, :]
        value_mask = row_ok[:, None] & v_ok[None, :]
        out_grad = tl.load(do + value_at, mask=value_mask, other=0.0)
        values = tl.load(v + value_at, mask=value_mask, other=0.0)
        state_at = kcols[:, None] * V + vcols[None, :]
        state_mask = k_ok[:, None] & v_ok[None, :]
        state = tl.load(entering + state_at, mask=state_mask, other=0.0)
        state_grad = tl.load(leaving_grad + state_at, mask=state_mask, other=0.0)
        from_state += tl.dot(out_grad.to(DOT), tl.trans(state).to(DOT), input_precision=PRECISION)
        from_state_grad += tl.dot(
            values.to(DOT), tl.trans(state_grad).to(DOT), input_precision=PRECISION
        )
    if HAS_DECAY:
        last = tl.minimum(chunk_start + BT, L) - 1
        g_last = tl.load(cumulative + last * K + kcols, mask=k_ok, other=0.0)
        from_state *= tl.exp(tl.minimum(gq, 0.0))
        from_state_grad *= tl.exp(tl.minimum(g_last[None, :] - g, 0.0))
    query_grad += from_state
    key_grad += from_state_grad

    tl.store(dq + band_at, query_grad.to(dq.dtype.element_ty), mask=band_mask)
    tl.store(dk + band_at, key_grad.to(dk.dtype.element_ty), mask=band_mask)
    if DECAY_GRAD:
        tl.store(decay_terms + band_at, queries * query_grad - keys * key_grad, mask=band_mask)
        if HAS_BONUS:
            tl.store(bonus_terms + band_at, own - queries * query_grad, mask=band_mask)


@triton.jit
def chunk_decay_gradients_kernel(
    decay_terms,
    bonus_terms,
    states,
    dstates,
    dlog_decay,
    L,
    NT,
    K: tl.constexpr,
    V: tl.constexpr,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_BONUS: tl.constexpr,
):
    """Grid (NT, cdiv(K, BK), bh): dlog_decay = the reverse cumulative sum of x over the chunk
    + rowsum(dS_leaving * S_leaving) (+ RWKV-6's per-row shift)."""
    NV: tl.constexpr = (V + BV - 1) // BV
    i_t, i_k, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bh = i_bh.to(tl.int64)
    decay_terms += bh * L * K
    bonus_terms += bh * L * K
    dlog_decay += bh * L * K
    rows = i_t * BT + tl.arange(0, BT)
    kcols = i_k * BK + tl.arange(0, BK)
    k_ok = kcols < K
    leaving = states + (bh * (NT + 1) + i_t + 1) * K * V
    leaving_grad = dstates + (bh * NT + i_t) * K * V
    through_state = tl.zeros([BK], dtype=tl.float32)
    for i_v in range(0, NV):
        vcols = i_v * BV + tl.arange(0, BV)
        state_at = kcols[:, None] * V + vcols[None, :]
        state_mask = k_ok[:, None] & (vcols < V)[None, :]
        state = tl.load(leaving + state_at, mask=state_mask, other=0.0)
        state_grad = tl.load(leaving_grad + state_at, mask=state_mask, other=0.0)
        through_state += tl.sum(state * state_grad, axis=1)
    key_at = rows[:, None] * K + kcols[None, :]
    key_mask = (rows < L)[:, None] & k_ok[None, :]
    terms = tl.load(decay_terms + key_at, mask=key_mask, other=0.0)
    grad = tl.cumsum(terms, axis=0, reverse=True) + through_state[None, :]
    if HAS_BONUS:
        grad += tl.load(bonus_terms + key_at, mask=key_mask, other=0.0)
    tl.store(dlog_decay + key_at, grad.to(dlog_decay.dtype.element_ty), mask=key_mask)
