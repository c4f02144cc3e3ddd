"""S4's kernel: the Cauchy + Woodbury algorithm and the reference both equal K_l = C A_bar^l
B_bar built here from the bilinear matrices directly. (Every backend: test_backends.py.)"""

import pytest
import torch

from models.ops.dplr_kernel import dplr_kernel
from models.ssm.hippo import legs_diagonal_plus_low_rank

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


@pytest.mark.parametrize("length", [12, 13])
def test_s4_cauchy_woodbury_kernel_equals_dense_matrix_powers(length):
    # Perturbed LegS DPLR parameters, several step sizes, two output channels.
    h, n = 3, 4
    lam, p, b, _ = legs_diagonal_plus_low_rank(2 * n)
    noise = lambda: 0.1 * torch.randn(h, n, dtype=torch.complex128)  # noqa: E731
    lam, p, b = lam + noise(), p + noise(), b + noise()
    lam = torch.complex(lam.real.clamp(max=-0.05), lam.imag)
    c_tilde = torch.randn(2, h, n, dtype=torch.complex128)
    dt = torch.tensor([0.01, 0.1, 0.7], dtype=torch.float64)

    full = lambda x: torch.cat([x, x.conj()], -1)  # noqa: E731
    a = torch.diag_embed(full(lam)) - full(p)[..., :, None] * full(p).conj()[..., None, :]
    eye = torch.eye(2 * n, dtype=a.dtype)
    a_bar = torch.linalg.solve(eye - dt[:, None, None] / 2 * a, eye + dt[:, None, None] / 2 * a)
    b_bar = (
        dt[:, None]
        * torch.linalg.solve(eye - dt[:, None, None] / 2 * a, full(b)[..., None])[..., 0]
    )
    # C~ = C (I - A_bar^L): recover C, then K_l = C A_bar^l B_bar.
    power_l = torch.linalg.matrix_power(a_bar, length)
    c = torch.linalg.solve((eye - power_l).transpose(-1, -2), full(c_tilde)[..., None])[..., 0]
    expected = torch.stack(
        [
            torch.einsum("chm,hmk,hk->ch", c, torch.linalg.matrix_power(a_bar, j), b_bar)
            for j in range(length)
        ],
        dim=-1,
    )
    assert expected.imag.abs().max() < 1e-12  # the conjugate-completed system is real
    for backend in ("reference", "cauchy"):
        kernel = dplr_kernel(dt, lam, p, b, c_tilde, length, backend=backend)
        torch.testing.assert_close(kernel, expected.real, **TIGHT)
