"""The Triton Vandermonde kernels beyond test_backends.py's short lengths: several tiles per
program and several programs per SSM copy, DSS's growing modes with their shift, strong decay,
high frequencies at long lengths, float64, a bfloat16 shift. On CPU they run in Triton's
interpreter (tests/conftest.py).

The oracle is the float64 reference evaluated at the very inputs the kernel gets (float32
rounded, then widened), so the errors measured are the kernel's own arithmetic."""

from __future__ import annotations

import pytest
import torch

from models.ops.dispatch import triton_runs_here
from models.ops.vandermonde.chunked import vandermonde_kernel
from models.ops.vandermonde.reference import vandermonde_reference
from tests.ops.compare import relative_rmse

pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if triton_runs_here([torch.empty(0, device=DEVICE)]) is not None:
    pytest.skip("Triton cannot run here", allow_module_level=True)

from models.ops.vandermonde.triton import vandermonde_triton  # noqa: E402


def _inputs(c, h, n, decay, frequency_scale, seed=0):
    """(coefficients (c, h, n), log_lambda (h, n)) complex128; Re log_lambda uniform in
    `decay` = (low, high), Im log_lambda normal with std `frequency_scale`."""
    g = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(c, h, n, generator=g, dtype=torch.complex128)
    low, high = decay
    real = low + (high - low) * torch.rand(h, n, generator=g, dtype=torch.float64)
    imag = frequency_scale * torch.randn(h, n, generator=g, dtype=torch.float64)
    return coefficients, torch.complex(real, imag)


def _errors(coefficients, log_lambda, length, shift, dtype=torch.complex64, **options):
    """{output, grad_coefficients, grad_log_lambda, grad_shift: relative RMSE of the Triton
    kernels in `dtype` against the float64 reference at the same (rounded) inputs}."""
    real = torch.float32 if dtype == torch.complex64 else torch.float64
    leaves = [coefficients.to(dtype), log_lambda.to(dtype)]
    leaves.append(None if shift is None else shift.to(real))
    references = [
        None if x is None else x.to(torch.complex128 if x.is_complex() else torch.float64)
        for x in leaves
    ]
    weights = None
    results = []
    for form, args in (("reference", references), ("triton", leaves)):
        args = [None if x is None else x.detach().to(DEVICE).requires_grad_() for x in args]
        function = vandermonde_reference if form == "reference" else vandermonde_triton
        kernel = function(
            args[0], args[1], length, args[2], **({} if form == "reference" else options)
        )
        if weights is None:
            g = torch.Generator().manual_seed(1)
            weights = torch.randn(
                torch.view_as_real(kernel).shape, generator=g, dtype=torch.float64
            )
        loss = (torch.view_as_real(kernel).double() * weights.to(DEVICE)).sum()
        inputs = [x for x in args if x is not None]
        grads = torch.autograd.grad(loss, inputs)
        results.append([kernel.detach(), *grads])
    names = ["output", "grad_coefficients", "grad_log_lambda", "grad_shift"]
    return {
        name: relative_rmse(value.cpu(), ref.cpu())
        for name, value, ref in zip(names, results[1], results[0])
    }


def _assert_below(errors, tolerance):
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, f"{worst}: relative RMSE {errors[worst]:.2e} ({errors})"


@pytest.mark.parametrize("programs", [1, 3, 64])
def test_several_tiles_per_program_and_programs_per_copy(programs):
    # L = 1500 is 12 tiles of 128 lags: one program runs all 12 (programs=1), or 3 programs
    # run 4 each, or each runs one; the backward adds its partial sums over programs.
    coefficients, log_lambda = _inputs(2, 3, 5, decay=(-0.01, 0.0), frequency_scale=1.0)
    shift = 0.1 * torch.randn(3, 5, dtype=torch.float64)
    _assert_below(_errors(coefficients, log_lambda, 1500, shift, programs=programs), 1e-5)


def test_high_frequencies_at_long_lengths_keep_their_phase():
    # |l b| up to ~1e5 rad: float32 rounding of l b costs the PyTorch forms ~1e-4 here.
    coefficients, log_lambda = _inputs(2, 2, 4, decay=(-0.002, 0.0), frequency_scale=10.0)
    errors = _errors(coefficients, log_lambda, 4096, None, programs=2)
    _assert_below(errors, 2e-6)
    chunked = vandermonde_kernel(
        coefficients.to(torch.complex64), log_lambda.to(torch.complex64), 4096
    )
    exact = vandermonde_reference(
        coefficients.to(torch.complex64).to(torch.complex128),
        log_lambda.to(torch.complex64).to(torch.complex128),
        4096,
    )
    assert relative_rmse(chunked, exact) > 10 * errors["output"]  # the test can tell the two apart


def test_growing_modes_with_dss_shift_never_overflow():
    # DSS: Re log_lambda > 0 with shift = Re(log_lambda) (L - 1), so every exponent is <= 0; a
    # mode growing by e^3 per step overflows float32 after 30 steps without it.
    length = 700
    coefficients, log_lambda = _inputs(2, 3, 4, decay=(0.5, 3.0), frequency_scale=1.0)
    shift = log_lambda.real.to(torch.complex64).real.double() * (length - 1)
    errors = _errors(coefficients, log_lambda, length, shift, programs=2)
    _assert_below(errors, 1e-5)
    kernel = vandermonde_triton(
        coefficients.to(torch.complex64).to(DEVICE),
        log_lambda.to(torch.complex64).to(DEVICE),
        length,
        shift.float().to(DEVICE),
    )
    assert torch.isfinite(torch.view_as_real(kernel)).all()
    assert kernel[..., -1].abs().max() > 0.1  # the last lag's power is exp(0): present, not lost


def test_dss_kernel_with_its_complex_shift():
    # DSS shifts growing modes by dt lambda (L - 1), imaginary part included
    # (models/ssm/dss_kernel.py): the kernel and the gradients of DSS's parameters match.
    from models.ops.vandermonde import vandermonde
    from models.ssm.dss_kernel import DSSKernel

    torch.manual_seed(0)
    dss = DSSKernel(d_model=3, d_state=4, channels=2, length=300).to(DEVICE)
    with torch.no_grad():
        dss.lam[:2, 0] = torch.tensor([0.8, 0.05])  # two growing modes
    results = {}
    for backend in ("reference", "triton"):
        dt_lam, c, shift = dss.discrete()
        assert shift.is_complex() and shift.imag.abs().max() > 0
        kernel = vandermonde(c, dt_lam, 300, shift, backend=backend).real
        loss = (kernel * torch.linspace(-1, 1, 300, device=DEVICE)).sum()
        grads = torch.autograd.grad(loss, [dss.log_dt, dss.lam, dss.w])
        results[backend] = [kernel.detach(), *grads]
    for name, value, expected in zip(["kernel", "log_dt", "lam", "w"], *results.values()):
        assert relative_rmse(expected.cpu(), value.cpu()) < 1e-4, name


def test_strong_decay_underflows_to_zero_without_nan():
    coefficients, log_lambda = _inputs(2, 3, 4, decay=(-60.0, -20.0), frequency_scale=3.0)
    errors = _errors(coefficients, log_lambda, 300, None, programs=2)
    _assert_below(errors, 1e-5)


def test_one_channel_modes_not_a_power_of_two_no_shift():
    coefficients, log_lambda = _inputs(1, 2, 33, decay=(-0.2, 0.0), frequency_scale=2.0)
    _assert_below(_errors(coefficients, log_lambda, 300, None), 1e-5)


def test_float64():
    coefficients, log_lambda = _inputs(2, 3, 5, decay=(-0.05, 0.0), frequency_scale=3.0)
    shift = 0.1 * torch.randn(3, 5, dtype=torch.float64)
    errors = _errors(coefficients, log_lambda, 400, shift, dtype=torch.complex128, programs=3)
    _assert_below(errors, 1e-10)


def test_bfloat16_shift_gets_a_bfloat16_gradient():
    coefficients, log_lambda = _inputs(2, 3, 4, decay=(-0.1, 0.0), frequency_scale=1.0)
    shift = (0.1 * torch.randn(3, 4)).to(torch.bfloat16).to(DEVICE).requires_grad_()
    kernel = vandermonde_triton(
        coefficients.to(torch.complex64).to(DEVICE),
        log_lambda.to(torch.complex64).to(DEVICE),
        50,
        shift,
    )
    (grad,) = torch.autograd.grad(kernel.real.sum(), shift)
    assert grad.dtype == torch.bfloat16
    expected = vandermonde_reference(coefficients, log_lambda, 50, shift.detach().double().cpu())
    assert relative_rmse(kernel.detach().cpu(), expected) < 1e-5


def test_zero_length():
    coefficients, log_lambda = _inputs(2, 3, 4, decay=(-0.1, 0.0), frequency_scale=1.0)
    coefficients = coefficients.to(torch.complex64).to(DEVICE).requires_grad_()
    kernel = vandermonde_triton(coefficients, log_lambda.to(torch.complex64).to(DEVICE), 0)
    assert kernel.shape == (2, 3, 0)
    (grad,) = torch.autograd.grad(kernel.real.sum(), coefficients)
    assert torch.equal(grad, torch.zeros_like(grad))
