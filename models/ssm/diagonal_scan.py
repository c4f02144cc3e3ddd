"""The complex diagonal linear recurrence of S5 (Smith et al., 2023) and the LRU (Orvieto et
al., 2023), with a time-invariant diagonal:

    x_t = lambda * x_{t-1} + v_t,   x_{-1} = h0        (elementwise over the n modes)

so x_t = lambda^{t+1} h0 + sum_{s <= t} lambda^{t-s} v_s. The papers run it as a parallel
(associative) scan; on CPU the same numbers come faster from:

- `diagonal_recurrence_fft`: the sum as a convolution with the kernel lambda^l, by complex FFT;
- `diagonal_recurrence_chunked`: inside chunks of T steps a (T, T) matrix of powers, between
  chunks the carried state, L/T sequential steps;
- `diagonal_recurrence_steps`: the plain loop, the reference of both.

`reverse=True` runs from the end: x_t = lambda * x_{t+1} + v_t (S5's backward scan).
All take log_lambda (n,) complex (lambda = exp(log_lambda): S5's Lambda * Delta, the LRU's
-exp(nu) + i exp(theta)), v (b, l, n) complex and h0 (b, n) or None; they return (b, l, n).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _powers(log_lambda: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """lambda^j for j = start..stop-1, (stop - start, n)."""
    j = torch.arange(start, stop, device=log_lambda.device, dtype=log_lambda.real.dtype)
    return torch.exp(j[:, None] * log_lambda)


def _forward_in_time(
    scan: Callable[..., torch.Tensor],
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None,
    reverse: bool,
    **options,
) -> torch.Tensor:
    if not reverse:
        return scan(log_lambda, v, h0, **options)
    return scan(log_lambda, v.flip(1), h0, **options).flip(1)


def _steps(log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    lam = torch.exp(log_lambda)
    x = torch.zeros_like(v[:, 0]) if h0 is None else h0
    states = []
    for v_t in v.unbind(1):  # unbind slices: indexing v[:, t] makes the backward O(L^2)
        x = lam * x + v_t
        states.append(x)
    return torch.stack(states, dim=1)


def _fft(log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    length = v.shape[1]
    powers = _powers(log_lambda, 0, length)  # (l, n): the kernel lambda^l
    n = 2 * length  # zero padding: a linear, not circular, convolution
    # FFT along the last, contiguous axis: (b, n, l) is several times faster than along dim 1.
    spectrum = torch.fft.fft(v.transpose(1, 2), n=n) * torch.fft.fft(powers.T, n=n)
    x = torch.fft.ifft(spectrum)[..., :length].transpose(1, 2)
    if h0 is not None:
        x = x + _powers(log_lambda, 1, length + 1) * h0[:, None]
    return x


def _chunked(
    log_lambda: torch.Tensor, v: torch.Tensor, h0: torch.Tensor | None, chunk: int
) -> torch.Tensor:
    batch, length, modes = v.shape
    chunks = -(-length // chunk)
    v = F.pad(v, (0, 0, 0, chunks * chunk - length)).view(batch, chunks, chunk, modes)
    # within[i, j, n] = lambda_n^(i - j) for i >= j, else 0: the in-chunk part as one matmul.
    steps = torch.arange(chunk, device=v.device)
    lag = steps[:, None] - steps[None, :]
    within = _powers(log_lambda, 0, chunk)[lag.clamp(min=0)] * (lag >= 0)[..., None]
    local = torch.einsum("ijn,bcjn->bcin", within, v)
    # Carry the state between chunks: h_c = lambda^T h_{c-1} + local_c[T-1].
    decay_in_chunk = _powers(log_lambda, 1, chunk + 1)  # lambda^(i+1), (chunk, n)
    lam_chunk = decay_in_chunk[-1]
    h = torch.zeros_like(v[:, 0, 0]) if h0 is None else h0
    outputs = []
    for local_c in local.unbind(1):
        outputs.append(local_c + decay_in_chunk * h[:, None])
        h = lam_chunk * h + local_c[:, -1]
    return torch.stack(outputs, dim=1).reshape(batch, chunks * chunk, modes)[:, :length]


def diagonal_recurrence_steps(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """Step by step over time: the reference."""
    return _forward_in_time(_steps, log_lambda, v, h0, reverse)


def diagonal_recurrence_fft(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """By complex FFT convolution with lambda^l, O(b n l log l)."""
    return _forward_in_time(_fft, log_lambda, v, h0, reverse)


def diagonal_recurrence_chunked(
    log_lambda: torch.Tensor,
    v: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
    chunk: int = 32,
) -> torch.Tensor:
    """By chunks of `chunk` steps, O(b n l chunk) work and l / chunk sequential steps."""
    return _forward_in_time(_chunked, log_lambda, v, h0, reverse, chunk=chunk)


DIAGONAL_RECURRENCES = {
    "fft": diagonal_recurrence_fft,
    "chunked": diagonal_recurrence_chunked,
    "steps": diagonal_recurrence_steps,
}
FORMS = tuple(DIAGONAL_RECURRENCES)


def diagonal_recurrence(form: str, chunk: int = 32) -> Callable[..., torch.Tensor]:
    """The recurrence computed by `form` ('fft' | 'chunked' | 'steps') from zero initial state,
    as f(log_lambda, v, reverse=False) -> x."""
    if form not in DIAGONAL_RECURRENCES:
        raise ValueError(f"diagonal recurrence form {form!r}; choose from {FORMS}")
    options = {"chunk": chunk} if form == "chunked" else {}
    scan = DIAGONAL_RECURRENCES[form]

    def run(log_lambda: torch.Tensor, v: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        return scan(log_lambda, v, None, reverse, **options)

    return run
