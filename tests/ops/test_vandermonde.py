"""The Vandermonde kernel: both forms equal sum_n c_n exp(j log_lambda_n - shift_n) written out.
(Every backend: test_backends.py.)"""

import pytest
import torch

from models.ops.vandermonde import vandermonde

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


@pytest.mark.parametrize("length", [1, 9, 10, 37])
def test_vandermonde_kernel_equals_powers(length):
    coefficients = torch.randn(2, 3, 4, dtype=torch.complex128)
    log_lambda = torch.randn(3, 4, dtype=torch.complex128) * 0.2
    shift = torch.randn(3, 4, dtype=torch.float64)
    expected = torch.stack(
        [(coefficients * torch.exp(j * log_lambda - shift)).sum(-1) for j in range(length)], -1
    )
    for backend in ("reference", "chunked"):
        kernel = vandermonde(coefficients, log_lambda, length, shift, backend=backend)
        torch.testing.assert_close(kernel, expected, **TIGHT)


def test_growing_modes_stay_finite_in_float32():
    # DSS's growing modes: Re(log_lambda) = 2 at L = 3000, with the shift that keeps every
    # exponent <= 0; sqrt-sized blocks would overflow exp(2 * 55) in float32 (then NaN).
    length = 3000
    log_lambda = torch.complex(torch.tensor([[2.0, -0.5]]), torch.tensor([[0.3, 1.0]]))
    shift = log_lambda.real.clamp(min=0) * (length - 1)
    coefficients = torch.randn(1, 1, 2, dtype=torch.complex64, requires_grad=True)
    expected = vandermonde(
        coefficients.detach().to(torch.complex128),
        log_lambda.to(torch.complex128),
        length,
        shift.double(),
        backend="reference",
    )
    kernel = vandermonde(coefficients, log_lambda, length, shift, backend="chunked")
    assert torch.isfinite(torch.view_as_real(kernel)).all()
    error = (kernel.to(torch.complex128) - expected).abs().pow(2).mean().sqrt()
    assert error / expected.abs().pow(2).mean().sqrt() < 1e-4
    (grad,) = torch.autograd.grad(torch.view_as_real(kernel).sum(), coefficients)
    assert torch.isfinite(torch.view_as_real(grad)).all()
