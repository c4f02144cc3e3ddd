"""State-space duality (SSD): scalar-decay linear recurrences computed by chunks (Dao & Gu, 2024,
"Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured State
Space Duality", Section 6 and Listing 1).

Per head h, with a scalar decay a_t = exp(log_a_t) <= 1 shared by the whole (p, n) state:

    S_t = a_t S_{t-1} + x_t B_t^T        (S_t: (p, n))
    y_t = S_t C_t

Mamba-2 uses it with x = dt * x, log_a = dt * A; retention (RetNet) is the same recurrence with
x = v, B = k, C = q and a fixed log_a = log(gamma). The chunked algorithm: (1) inside each chunk
the quadratic "attention" form with the segment-sum decay mask, (2) each chunk's contribution to
its final state, (3) a recurrence over chunks passing the states, (4) the passed-in state's
contribution to each output. Only step (3) loops, L / T times.

Axis letters: b batch, l time, c chunk, t/s positions in a chunk, h heads, g groups of heads
sharing B and C, r heads per group, p head width of x, n state size (width of B and C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops.ssd.scale_and_skip import scaled, with_skip


def segment_sum(log_a: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = log_a[..., j+1] + ... + log_a[..., i] for j <= i, -inf above the diagonal.

    log_a: (..., T) -> (..., T, T). Summing the masked copies (rather than subtracting two
    cumulative sums) keeps full precision when the cumulative sums are large.
    """
    length = log_a.shape[-1]
    repeated = log_a.unsqueeze(-1).expand(*log_a.shape, length)  # [..., i, j] = log_a[i]
    strictly_lower = torch.ones(length, length, dtype=torch.bool, device=log_a.device).tril(-1)
    sums = repeated.masked_fill(~strictly_lower, 0.0).cumsum(-2)
    lower = torch.ones(length, length, dtype=torch.bool, device=log_a.device).tril()
    return sums.masked_fill(~lower, float("-inf"))


def ssd_chunked(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    dt: torch.Tensor | None = None,
    D: torch.Tensor | None = None,
    chunk_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD.

    x: (b, l, h, p).  log_a: (b, l, h), <= 0.  B, C: (b, l, g, n), shared by the h / g
    consecutive heads of each group (g = h: one per head).  initial_state: (b, h, p, n) or None.
    dt: (b, l, h) input scale or None.  D: (h,) skip or None (scale_and_skip.py).
    Returns y: (b, l, h, p) and the final state (b, h, p, n).
    """
    raw, x = x, scaled(x, dt)
    batch, length, heads, width = x.shape
    groups, size = B.shape[2], B.shape[3]
    pad = -length % chunk_size
    if pad:
        # Padding steps have x = 0, B = C = 0 and log_a = 0: they leave the state unchanged.
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        log_a = F.pad(log_a, (0, 0, 0, pad))
    chunks = x.shape[1] // chunk_size

    # Head-major layout (b, g, r, c, t, .), r = heads per group; B and C broadcast over r, so
    # shared B and C are never copied per head.
    def by_chunk(t: torch.Tensor, per_group: int) -> torch.Tensor:
        t = t.reshape(batch, chunks, chunk_size, groups, per_group, -1)
        return t.permute(0, 3, 4, 1, 2, 5)

    x = by_chunk(x, heads // groups)
    B, C = by_chunk(B, 1), by_chunk(C, 1)
    log_a = by_chunk(log_a.unsqueeze(-1), heads // groups).squeeze(-1)  # (b, g, r, c, t)
    cumulative = log_a.cumsum(-1)

    # (1) Within chunks: y_t = sum_{s <= t} exp(sum_{s < r <= t} log_a_r) (C_t . B_s) x_s.
    scores = torch.matmul(C, B.transpose(-1, -2)) * torch.exp(segment_sum(log_a))
    y = torch.matmul(scores, x)

    # (2) Each chunk's inputs, decayed to the chunk's end, summed into a (p, n) state.
    decay_to_end = torch.exp(cumulative[..., -1:] - cumulative)  # (b, g, r, c, s)
    chunk_states = torch.matmul((x * decay_to_end.unsqueeze(-1)).transpose(-1, -2), B)

    # (3) Pass states across chunks: S_in[c + 1] = exp(sum of chunk c's log_a) S_in[c] + state_c.
    state = initial_state
    if state is None:
        state = x.new_zeros(batch, heads, width, size)
    state = state.reshape(batch, groups, heads // groups, width, size)
    chunk_decay = torch.exp(cumulative[..., -1])  # (b, g, r, c)
    incoming = []
    for decay_c, state_c in zip(chunk_decay.unbind(3), chunk_states.unbind(3)):
        incoming.append(state)
        state = decay_c[..., None, None] * state + state_c
    incoming = torch.stack(incoming, 3)  # (b, g, r, c, p, n): the state entering each chunk

    # (4) The incoming state, decayed to position t, read out by C_t.
    decay_from_start = torch.exp(cumulative).unsqueeze(-1)  # (b, g, r, c, t, 1)
    y = y + torch.matmul(C, incoming.transpose(-1, -2)) * decay_from_start

    y = y.permute(0, 3, 4, 1, 2, 5).reshape(batch, chunks * chunk_size, heads, width)
    y = with_skip(y[:, :length], raw, D)
    return y, state.reshape(batch, heads, width, size)
