"""The diagonal SSM kernel of S4D (Gu, Gupta, Goel & Ré, 2022, "On the Parameterization and
Initialization of Diagonal State Space Models"), also the long SSM of H3.

Per channel h, a diagonal continuous system A = diag(a_n), B, C with step dt_h, discretised by
zero-order hold: A_bar = exp(dt A), B_bar = (exp(dt A) - 1) / A * B. One mode of each conjugate
pair is kept, so the real kernel is

    K_l = 2 Re sum_n C_n B_bar_n A_bar_n^l        (a Vandermonde product)

Parameters as in the S4 repository's diagonal mode: Re a = -exp(log_a_real), Im a free,
dt = exp(log_dt); A, B and dt take `ssm_lr` and no weight decay, C the model's settings.
Axis letters: b batch, c kernel channels (2 = forward and backward), h channels, n modes, l time.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ops.vandermonde import vandermonde
from models.ssm.hippo import s4d_diagonal
from models.ssm.parameters import as_complex, log_uniform, ssm_parameter


class DiagonalKernel(nn.Module):
    """S4D kernel.

    d_model: H channels.  d_state: N, the real state size (N/2 complex modes).  channels: kernels
    per channel (2 for a bidirectional layer).  init: 'legs' | 'inv' | 'lin'.  dt_min, dt_max:
    range of the log-uniform step initialisation.  ssm_lr: learning rate of A, B, dt.

    kernel(length) -> (channels, H, length);  recurrence(u: (B, H, L)) -> (B, channels, H, L),
    the same convolution computed step by step.
    """

    ops = ("vandermonde",)

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        init: str = "legs",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        a, b = s4d_diagonal(init, d_state)
        a = a.expand(d_model, -1)
        self.log_dt = ssm_parameter(log_uniform((d_model,), dt_min, dt_max), ssm_lr)
        self.log_a_real = ssm_parameter(torch.log(-a.real).float(), ssm_lr)
        self.a_imag = ssm_parameter(a.imag.float().clone(), ssm_lr)
        b = b.expand(d_model, -1).to(torch.complex64)
        self.b = ssm_parameter(torch.view_as_real(b).clone(), ssm_lr)
        # C ~ complex normal (real and imaginary parts N(0, 1/2)), as torch.randn(cfloat) gives.
        c = torch.randn(channels, d_model, d_state // 2, dtype=torch.complex64)
        self.c = nn.Parameter(torch.view_as_real(c).clone())

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dt A (H, N/2), B_bar (H, N/2), C (channels, H, N/2)), complex."""
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag
        dt_a = torch.exp(self.log_dt)[:, None] * a
        b_bar = as_complex(self.b) * torch.expm1(dt_a) / a
        return dt_a, b_bar, as_complex(self.c)

    def kernel(self, length: int) -> torch.Tensor:
        dt_a, b_bar, c = self.discrete()
        return 2 * vandermonde(c * b_bar, dt_a, length).real

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        dt_a, b_bar, c = self.discrete()
        a_bar = torch.exp(dt_a)
        x = torch.zeros(*u.shape[:2], dt_a.shape[-1], dtype=dt_a.dtype, device=u.device)
        outputs = []
        for u_t in u.unbind(-1):
            x = a_bar * x + b_bar * u_t[..., None]  # (B, H, N/2)
            outputs.append(2 * torch.einsum("chn,bhn->bch", c, x).real)
        return torch.stack(outputs, dim=-1)
