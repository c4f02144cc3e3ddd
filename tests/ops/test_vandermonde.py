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
