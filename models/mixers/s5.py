"""S5 (Smith, Warrington & Linderman, 2023, "Simplified State Space Layers for Sequence
Modeling", ICLR): one multi-input multi-output diagonal SSM over all H channels,

    x_t = Lambda_bar x_{t-1} + B_bar u_t,   y_t = 2 Re(C~ x_t) + D u_t,

with Lambda from block-diagonal HiPPO-N, one mode of each conjugate pair, zero-order hold
(Lambda_bar = exp(Lambda Delta), B_bar = (Lambda_bar - 1) / Lambda B~) and a step Delta per
state, followed by S5's gated output. The paper runs the recurrence as a parallel scan; here the
diagonal recurrence runs in the form measured fastest on CPU (models/ops/diagonal_recurrence), and
`reference` runs it step by step.

On the LRA S5 is bidirectional (default): a second scan backward in time over the same
Lambda_bar, B_bar u, read by its own C2, as in S5's apply_ssm; `causal=True` keeps the forward
scan. Lambda, B~ and Delta take `ssm_lr` and no weight decay (S5's "standard" optimiser
groups); C~ and D the model's settings.
Axis letters: B batch, L time, H channels, P complex modes (state_size / 2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.ops.diagonal_recurrence import SCAN_BACKENDS, diagonal_recurrence
from models.ops.dispatch import backend_override
from models.ssm.complex_projection import complex_to_real, real_to_complex
from models.ssm.gated_output import GatedOutput
from models.ssm.hippo import s5_block_diagonal
from models.ssm.parameters import as_complex, log_uniform, ssm_parameter


def lecun_normal(*shape: int, fan_in: int) -> torch.Tensor:
    """JAX's lecun_normal: a normal truncated at 2 std, rescaled to variance 1 / fan_in."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of N(0, 1) truncated at +-2
    return nn.init.trunc_normal_(
        torch.empty(*shape, dtype=torch.float64), 0, std, -2 * std, 2 * std
    )


class S5(nn.Module):
    """S5 layer.

    d_model: H.  d_state: S5's state size before halving into P = d_state / 2 complex modes.
    blocks: HiPPO-N blocks on the diagonal (d_state must split into blocks of even size).  dt_min, dt_max: step
    initialisation range (S5 uses dt_min = 1e-4 on Path-X).  clip_eigs: keep Re Lambda <= -1e-4.
    activation: 'full_glu' | 'half_glu1' | 'half_glu2' | 'gelu'.  ssm_lr: learning rate of
    Lambda, B, Delta.  dropout: in the output stage.  causal: forward scan only.
    scan: 'chunked' | 'fft' | 'steps', the CPU form of the diagonal recurrence (on CUDA
    the run's kernel settings choose: Triton under `auto`); chunk: its size.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H);  reference(x, mask): the same with the
    recurrence run step by step.
    """

    ops = ("diagonal_recurrence",)

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        blocks: int = 4,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        clip_eigs: bool = False,
        activation: str = "half_glu1",
        ssm_lr: float = 1e-3,
        dropout: float = 0.0,
        causal: bool = False,
        scan: str = "chunked",
        chunk: int = 32,
    ) -> None:
        super().__init__()
        if scan not in SCAN_BACKENDS:
            raise ValueError(f"scan={scan!r}; choose from {sorted(SCAN_BACKENDS)}")
        self.scan_backend, self.chunk = SCAN_BACKENDS[scan], chunk
        self.causal, self.clip_eigs = causal, clip_eigs
        lam, v = s5_block_diagonal(d_state, blocks)  # (P,), (2P, P)
        self.lambda_re = ssm_parameter(lam.real.float().clone(), ssm_lr)
        self.lambda_im = ssm_parameter(lam.imag.float().clone(), ssm_lr)
        # B~ = V^-1 B and C~ = C V from real B (2P, H) and complex C (H, 2P), both lecun normal
        # with fan-in 2P as S5 draws them; V^-1 = V^* since V's columns are orthonormal.
        b = lecun_normal(d_state, d_model, fan_in=d_state).to(v.dtype)
        b_tilde = (v.conj().T @ b).to(torch.complex64)
        self.b = ssm_parameter(torch.view_as_real(b_tilde).clone(), ssm_lr)
        directions = 1 if causal else 2
        c = torch.complex(
            lecun_normal(directions, d_model, d_state, fan_in=d_state),
            lecun_normal(directions, d_model, d_state, fan_in=d_state),
        )
        self.c = nn.Parameter(torch.view_as_real((c @ v).to(torch.complex64)).clone())
        self.D = nn.Parameter(torch.randn(d_model))
        self.log_step = ssm_parameter(log_uniform((d_state // 2,), dt_min, dt_max), ssm_lr)
        self.output = GatedOutput(d_model, activation, dropout)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log Lambda_bar = Lambda Delta (P,), B_bar (P, H)) of the zero-order hold."""
        real = self.lambda_re.clamp(max=-1e-4) if self.clip_eigs else self.lambda_re
        lam = torch.complex(real, self.lambda_im)
        log_lambda_bar = lam * torch.exp(self.log_step)
        b_bar = (torch.expm1(log_lambda_bar) / lam)[:, None] * as_complex(self.b)
        return log_lambda_bar, b_bar

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        log_lambda_bar, b_bar = self.discrete()
        v = real_to_complex(x, b_bar)  # (B, L, P); zero at padded positions, as x is
        c = as_complex(self.c)
        y = complex_to_real(self._scan(log_lambda_bar, v), c[0])
        if not self.causal:
            y = y + complex_to_real(self._scan(log_lambda_bar, v, reverse=True), c[1])
        return self.output(2 * y + self.D * x)

    def _scan(self, log_lambda: torch.Tensor, v: torch.Tensor, reverse: bool = False):
        return diagonal_recurrence(
            log_lambda, v, reverse=reverse, chunk=self.chunk, cpu_form=self.scan_backend
        )

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
