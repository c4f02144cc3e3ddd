"""Linear attention with a data-dependent diagonal decay, one time step at a time: the oracle of
every other form. Per head, with a state S_t of shape (k, v) and a decay a_t in (0, 1]^k per key
channel:

    GLA (bonus is None):  S_t = diag(a_t) S_{t-1} + k_t^T v_t,    o_t = q_t S_t
    RWKV-6 (bonus u):     o_t = q_t (S_{t-1} + diag(u) k_t^T v_t), S_t = diag(a_t) S_{t-1} + k_t^T v_t

No decay (log_decay None, a_t = 1) is causal linear attention (Katharopoulos et al., 2020).
Axis letters: b batch, h heads, l time, k key width, v value width.
"""

from __future__ import annotations

import torch


def _decayed(state: torch.Tensor, decay_t: torch.Tensor | None) -> torch.Tensor:
    """diag(a_t) S: state (b, h, k, v), decay_t (b, h, k) or None (no decay)."""
    return state if decay_t is None else decay_t.unsqueeze(-1) * state


def gated_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    bonus: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k: (b, h, l, k).  v: (b, h, l, v).  log_decay: (b, h, l, k), <= 0 (log a_t), or None for
    no decay (linear attention).  bonus: (h, k) RWKV-6's u, or None.  initial_state: (b, h, k, v)
    or None. Returns o: (b, h, l, v) and the final state (b, h, k, v)."""
    batch, heads, _, key_width = q.shape
    state = initial_state
    if state is None:
        state = q.new_zeros(batch, heads, key_width, v.shape[-1])
    outputs = []
    decays = [None] * q.shape[2] if log_decay is None else torch.exp(log_decay).unbind(2)
    for q_t, k_t, v_t, decay_t in zip(q.unbind(2), k.unbind(2), v.unbind(2), decays):
        update = k_t.unsqueeze(-1) * v_t.unsqueeze(-2)  # (b, h, k, v)
        if bonus is None:
            state = _decayed(state, decay_t) + update
            outputs.append(torch.matmul(q_t.unsqueeze(-2), state).squeeze(-2))
        else:
            current = state + bonus[None, :, :, None] * update
            outputs.append(torch.matmul(q_t.unsqueeze(-2), current).squeeze(-2))
            state = _decayed(state, decay_t) + update
    return torch.stack(outputs, 2), state
