"""Linear attention with a data-dependent diagonal decay, computed by chunks: the recurrence of
gated linear attention (Yang, Wang, Shen, Panda & Kim, 2024, "Gated Linear Attention
Transformers with Hardware-Efficient Training") and of RWKV-6's WKV (Peng et al., 2024, "Eagle
and Finch: RWKV with Matrix-Valued States and Dynamic Recurrence").

Per head, with a state S_t of shape (k, v) and a decay a_t in (0, 1]^k per key channel:

    GLA (bonus is None):  S_t = diag(a_t) S_{t-1} + k_t^T v_t,    o_t = q_t S_t
    RWKV-6 (bonus u):     o_t = q_t (S_{t-1} + diag(u) k_t^T v_t), S_t = diag(a_t) S_{t-1} + k_t^T v_t

so o_t = sum_{s <= t} (q_t * k_s * exp(G_t - G_s)) . 1  v_s  with G the cumulative log decay
(inclusive of t for GLA, up to t - 1 for RWKV-6, which adds its own diagonal term q_t.(u*k_t) v_t).

The chunked form: inside a chunk of T steps the pairwise decays exp(G_t - G_s) (s <= t) are
formed explicitly in log space, a (T, T, k) tensor per chunk, so no factor ever exceeds 1 and
nothing overflows however strong the decay (the secondary-chunk idea of the GLA paper, taken to
its exact form); across chunks the state is passed by a loop over L / T chunks in which every
factor is a decay <= 1 as well. Without decay (log_decay None: causal linear attention) there is
nothing to overflow, and the states entering each chunk are one exclusive prefix sum over chunks,
with no loop at all.

Axis letters: b batch, h heads, l time, c chunk, t/s positions in a chunk, k key width, v value
width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def chunked_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked gated linear attention.

    q, k: (b, h, l, k).  v: (b, h, l, v).  log_decay: (b, h, l, k), <= 0 (log a_t), or None for
    no decay.
    bonus: (h, k) RWKV-6's u, or None for GLA.  initial_state: (b, h, k, v) or None.
    Returns o: (b, h, l, v) and the final state (b, h, k, v).
    """
    if log_decay is None:
        if bonus is None:
            return _chunked_linear_attention(q, k, v, chunk_size, initial_state)
        log_decay = torch.zeros_like(k)
    batch, heads, length, key_width = q.shape
    value_width = v.shape[-1]
    pad = -length % chunk_size
    if pad:
        # Padding steps have k = 0 and log_decay = 0: they leave the state unchanged.
        q, k, v, log_decay = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, log_decay))
    chunks = q.shape[2] // chunk_size
    q, k, log_decay = (
        t.reshape(batch, heads, chunks, chunk_size, key_width) for t in (q, k, log_decay)
    )
    v = v.reshape(batch, heads, chunks, chunk_size, value_width)
    cumulative = log_decay.cumsum(3)  # G_s, counted from the chunk's start
    exclusive = bonus is not None
    query_cumulative = cumulative - log_decay if exclusive else cumulative

    # Within chunks: weights[t, s] = sum_k q_t k_s exp(G_t - G_s), for s <= t (s < t for RWKV).
    log_pair = query_cumulative.unsqueeze(4) - cumulative.unsqueeze(3)  # (b, h, c, t, s, k)
    allowed = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device)
    allowed = allowed.tril(-1) if exclusive else allowed.tril()
    # Masking before exp keeps the (positive, possibly huge) exponents above the diagonal out.
    pair_decay = torch.exp(log_pair.masked_fill(~allowed[:, :, None], float("-inf")))
    weights = torch.einsum("bhctk,bhcsk,bhctsk->bhcts", q, k, pair_decay)
    o = torch.matmul(weights, v)

    # Across chunks: each chunk's keys decayed to its end, and a loop passing the states.
    decay_to_end = torch.exp(cumulative[:, :, :, -1:] - cumulative)
    chunk_states = torch.matmul((k * decay_to_end).transpose(-1, -2), v)  # (b, h, c, k, v)
    chunk_decay = torch.exp(cumulative[:, :, :, -1])  # (b, h, c, k)
    state = initial_state
    if state is None:
        state = q.new_zeros(batch, heads, key_width, value_width)
    incoming = []
    for decay_c, state_c in zip(chunk_decay.unbind(2), chunk_states.unbind(2)):
        incoming.append(state)
        state = decay_c.unsqueeze(-1) * state + state_c
    incoming = torch.stack(incoming, 2)  # (b, h, c, k, v): the state entering each chunk
    o = o + torch.matmul(q * torch.exp(query_cumulative), incoming)

    if exclusive:
        o = o + ((q * bonus[None, :, None, None, :] * k).sum(-1, keepdim=True)) * v
    o = o.reshape(batch, heads, chunks * chunk_size, value_width)
    return o[:, :, :length], state


def _chunked_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The no-decay case: o_t = q_t (S0 + sum_{s <= t} k_s^T v_s). An exact (T, T) causal product
    inside each chunk plus the state entering it, an exclusive prefix sum over chunks (made by
    shifting the inclusive one, so nothing is subtracted back out). Shapes as above."""
    batch, heads, length, key_width = q.shape
    chunk = max(1, min(chunk_size, length))
    pad = -length % chunk
    if pad:  # zero keys and values add nothing to any sum; the outputs are cut off below
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    chunks = q.shape[2] // chunk
    q, k, v = (t.reshape(batch, heads, chunks, chunk, t.shape[-1]) for t in (q, k, v))
    chunk_state = torch.einsum("bhctk,bhctv->bhckv", k, v)
    state = initial_state
    if state is None:
        state = q.new_zeros(batch, heads, key_width, v.shape[-1])
    inclusive = chunk_state.cumsum(2)
    entering = torch.cat([torch.zeros_like(inclusive[:, :, :1]), inclusive[:, :, :-1]], 2)
    entering = entering + state[:, :, None]
    within = torch.einsum("bhctk,bhcsk->bhcts", q, k).tril()  # causal inside a chunk
    o = within @ v + torch.einsum("bhctk,bhckv->bhctv", q, entering)
    o = o.reshape(batch, heads, chunks * chunk, -1)[:, :, :length]
    return o, state + inclusive[:, :, -1]
