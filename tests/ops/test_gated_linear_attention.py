"""Gated linear attention: the reference and the bidirectional composition are the papers'
explicit pair sums; the chunked form survives decays that overflow a factorised form. (Every
backend against the reference: test_backends.py.)"""

from __future__ import annotations

import pytest
import torch

from models.ops.dispatch import backend_override
from models.ops.gated_linear_attention import gated_attention, gated_linear_attention

F64 = torch.float64
TIGHT = {"rtol": 1e-9, "atol": 1e-11}


def explicit_gated_attention(q, k, v, log_decay, bonus, bidirectional):
    """The papers' sums written out pair by pair (no recurrence, no chunks):
    GLA:    o_t = sum_{s <= t} (q_t * prod_{s < r <= t} a_r * k_s) . 1 v_s
    RWKV-6: o_t = sum_{s < t} (q_t * prod_{s < r < t} w_r * k_s) . 1 v_s + (q_t * u * k_t) . 1 v_t
    and, bidirectionally, the mirror images for s > t, with the diagonal counted once."""
    length = q.shape[2]
    out = torch.zeros(*q.shape[:3], v.shape[-1], dtype=q.dtype)
    for t in range(length):
        for s in range(length):
            if s > t and not bidirectional:
                continue
            if s == t:
                weight = q[:, :, t] * k[:, :, t] * (1.0 if bonus is None else bonus)
            else:
                low, high = min(s, t), max(s, t)
                if bonus is None:  # GLA: the query's own decay counts, the key's does not
                    between = range(low + 1, high + 1) if s < t else range(low, high)
                else:  # RWKV-6: only the decays strictly between them
                    between = range(low + 1, high)
                decay = sum((log_decay[:, :, r] for r in between), torch.zeros_like(q[:, :, 0]))
                weight = q[:, :, t] * k[:, :, s] * torch.exp(decay)
            out[:, :, t] += weight.sum(-1, keepdim=True) * v[:, :, s]
    return out


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_bonus", [False, True], ids=["gla", "rwkv6"])
def test_gated_attention_is_the_papers_explicit_sum(with_bonus, bidirectional):
    b, h, length, kw, vw = 1, 2, 9, 3, 2
    q, k, v = (torch.randn(b, h, length, w, dtype=F64) for w in (kw, kw, vw))
    log_decay = -torch.rand(b, h, length, kw, dtype=F64)
    bonus = torch.randn(h, kw, dtype=F64) if with_bonus else None
    expected = explicit_gated_attention(
        q, k, v, log_decay, None if bonus is None else bonus[None, :], bidirectional
    )
    for backend in ("chunked", "reference"):
        with backend_override(backend):
            o = gated_attention(q, k, v, log_decay, bonus, bidirectional, chunk_size=4)
        torch.testing.assert_close(o, expected, **TIGHT)


def test_chunked_gated_attention_survives_decays_that_overflow_a_factorised_form():
    # exp(+-50 * 16) is far outside float32: only the log-space pairwise decays stay finite.
    q, k, v = torch.randn(1, 1, 64, 4), torch.randn(1, 1, 64, 4), torch.randn(1, 1, 64, 2)
    log_decay = torch.full((1, 1, 64, 4), -50.0)
    o, _ = gated_linear_attention(q, k, v, log_decay, chunk_size=16, backend="chunked")
    # Such a decay forgets everything but the current token: o_t = (q_t . k_t) v_t.
    torch.testing.assert_close(o, (q * k).sum(-1, keepdim=True) * v)


def test_no_decay_is_causal_linear_attention():
    # o_t = q_t (S0 + sum_{s <= t} k_s^T v_s), written out; both forms.
    q, k, v = (torch.randn(2, 3, 11, w, dtype=F64) for w in (4, 4, 5))
    s0 = torch.randn(2, 3, 4, 5, dtype=F64)
    states = s0[:, :, None] + torch.einsum("bhsk,bhsv->bhskv", k, v).cumsum(2)
    expected = torch.einsum("bhtk,bhtkv->bhtv", q, states)
    for backend in ("reference", "chunked"):
        o, state = gated_linear_attention(q, k, v, None, None, s0, chunk_size=4, backend=backend)
        torch.testing.assert_close(o, expected, **TIGHT)
        torch.testing.assert_close(state, states[:, :, -1], **TIGHT)
