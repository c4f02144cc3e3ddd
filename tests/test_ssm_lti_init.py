"""The LTI state-space mixers start where their papers start: HiPPO-LegS and its structured forms,
S4D's inits, DSS's skew-HiPPO, S5's blocks, the LRU's ring, Hyena's window, H3's shift; and their
SSM parameters train in their own optimizer group."""

import math

import pytest
import torch

from lra_bench.optim import parameter_groups
from models.mixers.h3 import H3
from models.mixers.hyena import Hyena
from models.mixers.lru import LRU
from models.mixers.s4 import S4
from models.mixers.s5 import S5
from models.ssm.hippo import (
    dss_skew_hippo,
    legs_diagonal_plus_low_rank,
    legs_matrices,
    legs_normal_plus_low_rank,
    s4d_diagonal,
    s5_block_diagonal,
)
from tests.zoo import build_mixer

LTI_MODELS = ["s4", "s4d", "dss", "s5", "lru", "hyena", "h3"]


def test_legs_matrix_entries():
    a, b = legs_matrices(4)
    expected = torch.tensor(
        [
            [-1.0, 0.0, 0.0, 0.0],
            [-math.sqrt(3), -2.0, 0.0, 0.0],
            [-math.sqrt(5), -math.sqrt(15), -3.0, 0.0],
            [-math.sqrt(7), -math.sqrt(21), -math.sqrt(35), -4.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(b, torch.tensor([1.0, 3, 5, 7], dtype=torch.float64).sqrt())


def test_legs_plus_rank_one_is_normal_with_real_part_minus_half():
    a_normal, p, _ = legs_normal_plus_low_rank(6)
    torch.testing.assert_close(p, (torch.arange(6, dtype=torch.float64) + 0.5).sqrt())
    skew = a_normal + 0.5 * torch.eye(6, dtype=torch.float64)
    torch.testing.assert_close(skew, -skew.T, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [4, 16])
def test_diagonal_plus_low_rank_form_reconstructs_legs(n):
    lam, p, b, v = legs_diagonal_plus_low_rank(n)
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5))
    assert (lam.imag < 0).all()  # one mode of each conjugate pair, S4's sign convention
    v_full = torch.cat([v, v.conj()], 1)
    lam_full, p_full, b_full = (torch.cat([x, x.conj()]) for x in (lam, p, b))
    torch.testing.assert_close(v_full.conj().T @ v_full, torch.eye(n, dtype=v.dtype))
    a = v_full @ (torch.diag(lam_full) - p_full[:, None] * p_full.conj()[None, :]) @ v_full.conj().T
    torch.testing.assert_close(a, legs_matrices(n)[0].to(a.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(v_full @ b_full, legs_matrices(n)[1].to(a.dtype))


def test_s4d_initialisations():
    lam, b = s4d_diagonal("lin", 8)
    torch.testing.assert_close(lam.imag, -math.pi * torch.arange(4, dtype=torch.float64))
    torch.testing.assert_close(b, torch.ones(4, dtype=torch.complex128))
    lam, _ = s4d_diagonal("inv", 8)
    # A_n = -1/2 - i (N/pi)(N/(2n+1) - 1): -17.825, -4.244, -1.528, -0.364 for N = 8
    torch.testing.assert_close(
        lam.imag,
        torch.tensor(
            [-56 / math.pi, -40 / (3 * math.pi), -24 / (5 * math.pi), -8 / (7 * math.pi)],
            dtype=torch.float64,
        ),
    )
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5))
    lam, b = s4d_diagonal("legs", 8)
    lam_dplr, _, b_dplr, _ = legs_diagonal_plus_low_rank(8)
    torch.testing.assert_close(lam, lam_dplr)
    torch.testing.assert_close(b, b_dplr)


def test_dss_lambda_is_the_positive_half_of_skew_hippo():
    lam = dss_skew_hippo(4)
    assert torch.allclose(lam.real, torch.full_like(lam.real, -0.5))
    assert (lam.imag > 0).all() and (lam.imag.diff() < 0).all()  # largest imaginary part first
    legs_8 = s4d_diagonal("legs", 8)[0]  # the same eigenvalues, conjugated
    torch.testing.assert_close(lam.imag.sort().values, (-legs_8.imag).sort().values)


def test_s5_blocks_of_hippo_n_and_its_b_and_step_initialisation():
    lam, v = s5_block_diagonal(8, 2)
    block_lam, _, _, block_v = legs_diagonal_plus_low_rank(4)
    torch.testing.assert_close(lam, block_lam.repeat(2))
    torch.testing.assert_close(v[:4, :2], block_v)
    assert v[:4, 2:].abs().max() == 0 and v[4:, :2].abs().max() == 0
    mixer = S5(d_model=32, d_state=8, blocks=2, dt_min=1e-4, dt_max=1e-1)
    step = mixer.log_step.exp()
    assert ((step >= 1e-4) & (step <= 1e-1)).all()
    # B~ = V^* B for a real B: B = 2 Re(V B~), drawn lecun-normal truncated at 2 std (fan-in 8).
    b = 2 * (v.to(torch.complex64) @ torch.view_as_complex(mixer.b)).real
    std = math.sqrt(1 / 8) / 0.87962566103423978
    assert b.abs().max() <= 2 * std + 1e-5 and b.std() > 0.5 * std


def test_lru_ring_initialisation_and_gamma_normalisation():
    mixer = LRU(d_model=8, d_state=512, r_min=0.4, r_max=0.9, max_phase=math.pi / 10)
    lam = torch.exp(mixer.log_lambda().to(torch.complex128))
    assert lam.abs().min() >= 0.4 - 1e-6 and lam.abs().max() <= 0.9 + 1e-6
    assert lam.angle().min() >= 0 and lam.angle().max() <= math.pi / 10 + 1e-6
    # |lambda|^2 uniform on [r_min^2, r_max^2]: its mean is the midpoint.
    assert abs((lam.abs() ** 2).mean().item() - (0.16 + 0.81) / 2) < 0.05
    torch.testing.assert_close(
        mixer.gamma_log.exp().double(), (1 - lam.abs() ** 2).sqrt(), rtol=1e-5, atol=1e-6
    )


def test_s4_initial_state_matrix_and_path_x_step_range():
    mixer = S4(d_model=16, max_length=32, d_state=8, dt_min=1e-4, dt_max=1e-1)
    kernel = mixer.kernel
    dt = kernel.log_dt.exp()
    assert ((dt >= 1e-4) & (dt <= 1e-1)).all()
    lam, p, b, _ = legs_diagonal_plus_low_rank(8)
    torch.testing.assert_close(kernel.log_a_real.exp(), torch.full((16, 4), 0.5))
    torch.testing.assert_close(kernel.a_imag, lam.imag.float().expand(16, -1))
    torch.testing.assert_close(
        torch.view_as_complex(kernel.p), p.to(torch.complex64).expand(16, -1)
    )
    torch.testing.assert_close(
        torch.view_as_complex(kernel.b), b.to(torch.complex64).expand(16, -1)
    )


def test_hyena_window_and_positional_encoding():
    mixer = Hyena(d_model=4, max_length=10)
    filt = mixer.filter
    torch.testing.assert_close(filt.z[:, 0], torch.linspace(0, 1, 10))  # t on [0, 1]
    # Decay rates log(1e-2)/1.5 .. log(1e-2)/0.3 over the channels, for both directions.
    rates = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, 4)
    torch.testing.assert_close(filt.deltas, rates.repeat(2))
    # The window is 1 at t = 0 and exp(-|delta|) at t = 1.
    h_raw = filt.ffn(filt.z).T
    torch.testing.assert_close(filt(10)[:, 0], h_raw[:, 0])
    torch.testing.assert_close(filt(10)[:, -1], h_raw[:, -1] * torch.exp(-filt.deltas.abs()))


def test_h3_shift_ssm_starts_as_its_c_taps():
    mixer = H3(d_model=3, d_state=5)
    kernel = mixer.shift.kernel(8)
    torch.testing.assert_close(kernel[:, :5], mixer.shift.c.detach(), rtol=0, atol=1e-6)
    assert kernel[:, 5:].abs().max() == 0
    assert mixer.shift.c.abs().max() <= 5**-0.5


@pytest.mark.parametrize("model", LTI_MODELS)
def test_ssm_parameters_get_their_own_group_without_weight_decay(model):
    mixer = build_mixer(model, d_model=8, max_length=16, ssm_lr=3e-4)
    groups = parameter_groups(mixer, lr=1e-2, weight_decay=0.1)
    ssm = [g for g in groups if g["lr"] == 3e-4]
    assert len(ssm) == 1 and ssm[0]["weight_decay"] == 0.0
    expected = {
        "s4": {"kernel.log_dt", "kernel.log_a_real", "kernel.a_imag", "kernel.p", "kernel.b"},
        "s4d": {"kernel.log_dt", "kernel.log_a_real", "kernel.a_imag", "kernel.b"},
        "dss": {"kernel.log_dt", "kernel.lam", "kernel.w"},
        "s5": {"lambda_re", "lambda_im", "b", "log_step"},
        "lru": {"nu_log", "theta_log", "gamma_log", "b"},
        "hyena": {"filter.ffn.0.weight", "filter.ffn.0.bias", "filter.ffn.1.freq"},
        "h3": {"shift.b", "diagonal.log_dt", "diagonal.a_imag", "diagonal.b"},
    }[model]
    assert expected <= set(ssm[0]["names"])
    # Everything else (C, D, projections) trains with the model's settings.
    main = {n for g in groups if g["lr"] == 1e-2 for n in g["names"]}
    assert not main & set(ssm[0]["names"]) and main
