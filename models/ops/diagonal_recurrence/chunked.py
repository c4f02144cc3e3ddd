"""The diagonal recurrence by chunks of T steps: inside a chunk a (T, T) matrix of powers, between
chunks the carried state, l / T sequential steps and O(b n l T) work. Axis letters: b batch,
c chunks, i / j positions in a chunk, l time, n modes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops.diagonal_recurrence.common import forward_in_time, powers


def _chunked(
    log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None, chunk: int
) -> torch.Tensor:
    batch, length, modes = v.shape
    chunks = -(-length // chunk)
    v = F.pad(v, (0, 0, 0, chunks * chunk - length)).view(batch, chunks, chunk, modes)
    # within[i, j, n] = lambda_n^(i - j) for i >= j, else 0: the in-chunk part as one matmul.
    steps = torch.arange(chunk, device=v.device)
    lag = steps[:, None] - steps[None, :]
    within = powers(log_lambda, 0, chunk)[lag.clamp(min=0)] * (lag >= 0)[..., None]
    local = torch.einsum("ijn,bcjn->bcin", within, v)
    # Carry the state between chunks: h_c = lambda^T h_{c-1} + local_c[T-1].
    decay_in_chunk = powers(log_lambda, 1, chunk + 1)  # lambda^(i+1), (chunk, n)
    lam_chunk = decay_in_chunk[-1]
    h = torch.zeros_like(v[:, 0, 0]) if h0 is None else h0
    outputs = []
    for local_c in local.unbind(1):
        outputs.append(local_c + decay_in_chunk * h[:, None])
        h = lam_chunk * h + local_c[:, -1]
    return torch.stack(outputs, dim=1).reshape(batch, chunks * chunk, modes)[:, :length]


def diagonal_recurrence_chunked(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
    chunk: int = 32,
) -> torch.Tensor:
    """Arguments and result as `diagonal_recurrence_reference`; chunk: T."""
    return forward_in_time(_chunked, log_lambda, v, h0, reverse, chunk=chunk)
