"""The complex diagonal linear recurrence of S5 (Smith et al., 2023) and the LRU (Orvieto et al.,
2023), with a time-invariant diagonal:

    x_t = lambda * x_{t-1} + v_t,   x_{-1} = h0        (elementwise over the n modes)

so x_t = lambda^{t+1} h0 + sum_{s <= t} lambda^{t-s} v_s; `reverse=True` runs from the end,
x_t = lambda * x_{t+1} + v_t (S5's backward scan). The papers run it as a parallel (associative)
scan; on CPU the same numbers come faster from the chunked form (measured).

Backends: `reference` (the plain loop, the oracle), `chunked` ((T, T) power matrices inside
chunks, the state carried between them), `fft` (convolution with lambda^l by complex FFT),
`triton` (GPU: one sequential scan per batch row and block of modes, the same kernel run backward
in time for the adjoint; see triton.py).
"""

from __future__ import annotations

import torch

from models.ops.dispatch import Backend, KernelOp, triton_runs_here

OP = KernelOp(
    "diagonal_recurrence",
    [
        Backend(
            "reference", "models.ops.diagonal_recurrence.reference:diagonal_recurrence_reference"
        ),
        Backend("chunked", "models.ops.diagonal_recurrence.chunked:diagonal_recurrence_chunked"),
        Backend("fft", "models.ops.diagonal_recurrence.fft:diagonal_recurrence_fft"),
        Backend(
            "triton",
            "models.ops.diagonal_recurrence.triton:diagonal_recurrence_triton",
            available=triton_runs_here,
            compiled=True,
        ),
    ],
    auto={"cuda": ("triton", "chunked"), "cpu": ("chunked",)},
)


def diagonal_recurrence(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
    *,
    chunk: int = 32,
    backend: str | None = None,
    cpu_form: str | None = None,
) -> torch.Tensor:
    """log_lambda: (n,) complex (lambda = exp(log_lambda)), v: (b, l, n) complex, h0: (b, n) or
    None (zeros) -> x (b, l, n). chunk: steps per chunk (chunked form). backend: None = the run's
    settings, or a form's name. cpu_form: the form to take on CPU where the run's settings leave
    this op on `auto` (the S5 / LRU `scan` option); elsewhere, and wherever the settings name a
    backend, the settings decide (so `auto` on CUDA takes Triton)."""
    if backend is None and cpu_form is not None and v.device.type == "cpu":
        if OP.requested(None) == "auto":
            backend = cpu_form
    return OP(log_lambda, v, h0, reverse, backend=backend, chunk=chunk)


# The `scan` option of the S5 and LRU configs -> the CPU form it names.
SCAN_BACKENDS = {"chunked": "chunked", "fft": "fft", "steps": "reference"}
