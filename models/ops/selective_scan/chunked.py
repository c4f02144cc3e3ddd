"""The selective scan (reference.py for the recurrence) in chunks that are recomputed in the
backward: the same loop, cut into chunks, each run without recording a graph and recomputed
(with one) in the backward, so that only the chunk inputs and one (b, d, n) state per chunk are
kept: memory O(B L (D + N) + B D N L / T) instead of the
O(B L D N) that autograd stores for the whole loop, for ~1.3x its time (measured on CPU; forms
that build the (b, T, d, n) discretised tensors per chunk, or log-depth scans, were slower).

Axis letters: b batch, l / T time, d channels, n state size.
"""

from __future__ import annotations

import torch

from models.ops.selective_scan.reference import selective_scan_reference


class _RecomputedScan(torch.autograd.Function):
    """selective_scan_reference over one chunk, keeping only its inputs for the backward.

    forward(u, delta, A, B, C, h0) -> (y without the D skip, last state); shapes as in
    `selective_scan`.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h0):
        ctx.save_for_backward(u, delta, A, B, C, h0)
        with torch.no_grad():
            return selective_scan_reference(u, delta, A, B, C, None, h0)

    @staticmethod
    def backward(ctx, grad_y, grad_state):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        wanted = [t for t in inputs if t.requires_grad]
        with torch.enable_grad():
            y, state = selective_scan_reference(*inputs[:5], None, inputs[5])
            grads = iter(torch.autograd.grad((y, state), wanted, (grad_y, grad_state)))
        return tuple(next(grads) if t.requires_grad else None for t in inputs)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked selective scan, recomputed chunk by chunk in the backward.

    u: (b, l, d) input.  delta: (b, l, d) positive steps (after softplus).  A: (d, n), negative.
    B, C: (b, l, n).  D: (d,) skip or None.  initial_state: (b, d, n) or None (zeros).
    Returns y: (b, l, d) and the final state (b, d, n).
    """
    batch, _, channels = u.shape
    state = initial_state
    if state is None:
        state = u.new_zeros(batch, channels, A.shape[-1])
    outputs = []
    for start in range(0, u.shape[1], chunk_size):
        piece = slice(start, start + chunk_size)
        y, state = _RecomputedScan.apply(
            u[:, piece], delta[:, piece], A, B[:, piece], C[:, piece], state
        )
        outputs.append(y)
    y = torch.cat(outputs, 1)
    if D is not None:
        y = y + u * D
    return y, state
