"""The Triton Cauchy kernels of S4 beyond test_backends.py's small case: several blocks of modes
and of frequencies, a row count that is not a power of two, float64, and S4's LegS modes at a
long length. The oracle is the PyTorch Cauchy sum (cauchy.py), itself held to dense matrix powers
by test_dplr_kernel.py. On CPU the kernels run in Triton's interpreter (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from models.ops.dispatch import triton_runs_here
from models.ops.dplr_kernel.cauchy import (
    bilinear_cauchy_sums,
    dplr_bilinear_kernel,
    roots_of_unity,
)
from models.ssm.hippo import legs_diagonal_plus_low_rank
from tests.ops.compare import relative_rmse

pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if triton_runs_here([torch.empty(0, device=DEVICE)]) is not None:
    pytest.skip("Triton cannot run here", allow_module_level=True)

from models.ops.dplr_kernel.triton import (  # noqa: E402
    BLOCK_N,
    BLOCK_Z,
    bilinear_cauchy_sums_triton,
    dplr_kernel_triton,
)


def _with_gradients(function, leaves, *constants):
    leaves = [t.detach().clone().to(DEVICE).requires_grad_() for t in leaves]
    out = function(
        *leaves, *(c.to(DEVICE) if isinstance(c, torch.Tensor) else c for c in constants)
    )
    real = torch.view_as_real(out) if out.is_complex() else out
    weights = torch.randn(
        real.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    (real.double() * weights.to(DEVICE)).sum().backward()
    return [out.detach().cpu(), *(t.grad.cpu() for t in leaves)]


def _legs_modes(copies: int, modes: int, seed: int):
    """S4's LegS diagonal, perturbed per copy, with step sizes from 1e-3 to 1e-1: dt * lambda."""
    g = torch.Generator().manual_seed(seed)
    lam = legs_diagonal_plus_low_rank(2 * modes)[0].to(torch.complex128)
    noise = torch.complex(
        *(torch.randn(copies, modes, generator=g, dtype=torch.float64) for _ in "ri")
    )
    dt = torch.logspace(-3, -1, copies, dtype=torch.float64)[:, None]
    return dt * (lam + 0.1 * noise)


# float32: the suite's tolerance (compare.py); the PyTorch form itself in complex64 is ~1e-5 off.
@pytest.mark.parametrize("dtype, tolerance", [(torch.complex128, 1e-12), (torch.complex64, 1e-4)])
def test_cauchy_sums_match_pytorch_over_several_blocks(dtype, tolerance):
    copies, modes, length = 3, BLOCK_N * 2 + 5, 2 * BLOCK_Z * 2 + 6  # 3 mode, 3 frequency blocks
    g = torch.Generator().manual_seed(0)
    weights = torch.complex(
        *(torch.randn(3, copies, modes, generator=g, dtype=torch.float64) for _ in "ri")
    )
    mu = _legs_modes(copies, modes, seed=1)
    omega = roots_of_unity(length, torch.complex128, torch.device("cpu"))
    expected = _with_gradients(bilinear_cauchy_sums, [weights, mu], omega)
    got = _with_gradients(
        bilinear_cauchy_sums_triton, [weights.to(dtype), mu.to(dtype)], omega.to(dtype)
    )
    for name, a, b in zip(["sums", "weights", "dt_lambda"], got, expected):
        assert a.dtype == dtype
        error = relative_rmse(a, b)
        assert error < tolerance, f"{dtype} {name}: relative RMSE {error:.1e}"


def test_s4_kernel_at_a_long_length_is_as_accurate_as_the_pytorch_form():
    """The whole DPLR kernel (Woodbury, inverse FFT) of LegS modes at L 2048 in float32, values and
    every gradient, against the float64 PyTorch form: within twice the error of the PyTorch form
    in float32 (measured: ~1e-4 for dt and lam, where the kernel's sensitivity to dt is large)."""
    copies, modes, length = 2, 32, 2048
    g = torch.Generator().manual_seed(2)
    lam, p, b, _ = legs_diagonal_plus_low_rank(2 * modes)
    lam, p, b = (x.to(torch.complex128).expand(copies, modes).clone() for x in (lam, p, b))
    c_tilde = torch.complex(
        *(torch.randn(1, copies, modes, generator=g, dtype=torch.float64) for _ in "ri")
    )
    dt = torch.tensor([1e-3, 1e-1], dtype=torch.float64)
    leaves = [dt, lam, p, b, c_tilde]
    single = [t.to(torch.complex64 if t.is_complex() else torch.float32) for t in leaves]
    expected = _with_gradients(dplr_bilinear_kernel, leaves, length)
    pytorch_single = _with_gradients(dplr_bilinear_kernel, single, length)
    got = _with_gradients(dplr_kernel_triton, single, length)
    names = ["kernel", "dt", "lam", "p", "b", "c_tilde"]
    for name, a, own, b in zip(names, got, pytorch_single, expected):
        error, bound = relative_rmse(a, b), 2 * max(relative_rmse(own, b), 5e-6)
        assert error < bound, (
            f"{name}: relative RMSE {error:.1e} (PyTorch float32: {bound / 2:.1e})"
        )
