"""The Triton diagonal recurrence beyond test_backends.py's cases: no initial state, more modes
than one program holds, non-contiguous inputs, float64, and a long decay-free walk. On CPU the
kernel runs in Triton's interpreter (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from models.ops.diagonal_recurrence.reference import diagonal_recurrence_reference
from models.ops.dispatch import triton_runs_here
from tests.ops.compare import relative_rmse

pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if triton_runs_here([torch.empty(0, device=DEVICE)]) is not None:
    pytest.skip("Triton cannot run here", allow_module_level=True)

from models.ops.diagonal_recurrence.triton import BLOCK_N, diagonal_recurrence_triton  # noqa: E402


def _outputs_and_grads(function, log_lambda, v, h0, reverse):
    leaves = [t.detach().clone().requires_grad_() for t in (log_lambda, v, h0) if t is not None]
    log_lambda_, v_ = leaves[0], leaves[1]
    h0_ = leaves[2] if h0 is not None else None
    x = function(log_lambda_, v_, h0_, reverse)
    weights = torch.randn(torch.view_as_real(x).shape, generator=torch.Generator().manual_seed(3))
    (torch.view_as_real(x).double() * weights.double()).sum().backward()
    return [x.detach(), *(t.grad for t in leaves)]


@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_triton_recurrence_matches_steps_over_several_mode_blocks(with_h0, reverse):
    g = torch.Generator().manual_seed(0)
    modes = BLOCK_N + 7  # two programs per row, the second one masked
    log_lambda = torch.complex(
        -torch.rand(modes, generator=g, dtype=torch.float64) * 0.2,
        torch.randn(modes, generator=g, dtype=torch.float64),
    )
    # v sliced out of a wider tensor: strides the kernel must follow, not assume.
    v = torch.randn(3, 40, 2 * modes, generator=g, dtype=torch.complex128)[..., ::2]
    h0 = torch.randn(3, modes, generator=g, dtype=torch.complex128) if with_h0 else None
    expected = _outputs_and_grads(diagonal_recurrence_reference, log_lambda, v, h0, reverse)
    for dtype, tolerance in ((torch.complex128, 1e-12), (torch.complex64, 1e-5)):
        inputs = [t.to(DEVICE, dtype) if t is not None else None for t in (log_lambda, v, h0)]
        got = _outputs_and_grads(diagonal_recurrence_triton, *inputs, reverse)
        assert got[1].dtype == dtype  # the gradients come back in the inputs' dtype
        for name, a, b in zip(["x", "log_lambda", "v", "h0"], got, expected):
            error = relative_rmse(a.cpu(), b)
            assert error < tolerance, f"{dtype} {name}: relative RMSE {error:.1e}"


def test_undamped_rotation_keeps_its_modulus_over_a_long_walk():
    """lambda on the unit circle, one impulse: |x_t| stays 1 for every t (float32 rounding only),
    and the phase after t steps is t * angle."""
    angle = 0.3
    log_lambda = torch.tensor([complex(0.0, angle)], dtype=torch.complex64, device=DEVICE)
    v = torch.zeros(1, 2000, 1, dtype=torch.complex64, device=DEVICE)
    v[0, 0, 0] = 1.0
    x = diagonal_recurrence_triton(log_lambda, v)[0, :, 0].cpu()
    torch.testing.assert_close(x.abs(), torch.ones(2000), rtol=0, atol=1e-4)
    t = torch.arange(2000, dtype=torch.float64)
    expected = torch.polar(torch.ones_like(t), t * angle)
    assert relative_rmse(x, expected) < 1e-3


@pytest.mark.parametrize("mixer", ["s5", "lru"])
def test_the_mixers_scan_option_is_the_cpu_form_and_the_settings_choose_otherwise(mixer):
    """S5 / LRU's `scan` option picks the CPU form under `kernels.backend=auto`; a backend the
    run's settings name wins (here Triton, in the interpreter), and the two agree."""
    from models.mixers.lru import LRU
    from models.mixers.s5 import S5
    from models.ops import dispatch

    torch.manual_seed(0)
    layer = (S5(16, d_state=8, blocks=2) if mixer == "s5" else LRU(16, d_state=8)).double()
    x = torch.randn(2, 37, 16, dtype=torch.float64)
    mask = torch.ones(2, 37, dtype=torch.bool)
    try:
        dispatch.configure()
        by_default = layer(x, mask)
        assert dispatch.report(["diagonal_recurrence"]) == {"diagonal_recurrence": "chunked"}
        dispatch.configure(per_op={"diagonal_recurrence": "triton"})
        by_triton = layer(x, mask)
        assert dispatch.report(["diagonal_recurrence"]) == {"diagonal_recurrence": "triton"}
    finally:
        dispatch.configure()
    torch.testing.assert_close(by_triton, by_default, rtol=1e-9, atol=1e-10)
