"""The diagonal recurrence: the reference is x_t = lambda^(t+1) h0 + sum_s lambda^(t-s) v_s, and
the FFT and chunked forms equal it at every chunk size. (Every backend: test_backends.py.)"""

import pytest
import torch

from models.ops.diagonal_recurrence import diagonal_recurrence

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


@pytest.mark.parametrize("reverse", [False, True])
def test_diagonal_recurrence_by_fft_and_chunks_equals_steps_with_initial_state(reverse):
    modes = 5
    log_lambda = torch.complex(
        -torch.rand(modes, dtype=torch.float64) * 0.3, torch.rand(modes, dtype=torch.float64) * 3
    )
    v = torch.randn(2, 23, modes, dtype=torch.complex128)
    h0 = torch.randn(2, modes, dtype=torch.complex128)
    steps = diagonal_recurrence(log_lambda, v, h0, reverse, backend="reference")
    # Definition at one point: x_t = lambda^(t+1) h0 + sum_s lambda^(t-s) v_s (forward time).
    if not reverse:
        lam = log_lambda.exp()
        x5 = lam**6 * h0 + sum(lam ** (5 - s) * v[:, s] for s in range(6))
        torch.testing.assert_close(steps[:, 5], x5, **TIGHT)
    fft = diagonal_recurrence(log_lambda, v, h0, reverse, backend="fft")
    torch.testing.assert_close(fft, steps, **TIGHT)
    for chunk in (4, 8, 64):  # not dividing, dividing, longer than the sequence
        chunked = diagonal_recurrence(log_lambda, v, h0, reverse, chunk=chunk, backend="chunked")
        torch.testing.assert_close(chunked, steps, **TIGHT)
