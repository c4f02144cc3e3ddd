"""The Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, 2023,
"Resurrecting Recurrent Neural Networks for Long Sequences", ICML):

    x_t = diag(lambda) x_{t-1} + gamma * (B u_t),   y_t = Re(C x_t) + D u_t,

a complex diagonal recurrence with the exponential parameterisation lambda = exp(-exp(nu) +
i exp(theta)), eigenvalues initialised uniformly on the ring r_min <= |lambda| <= r_max with
phase in [0, max_phase], and the normalisation gamma = sqrt(1 - |lambda|^2) (trained as
gamma_log). Followed by the paper's GELU + GLU output stage. The paper runs the recurrence as a
parallel scan; here it runs in the form measured fastest on CPU (models/ops/diagonal_recurrence),
and `reference` runs it step by step.

Bidirectional by default, as the S5-style LRA setup the LRU paper builds on: a second scan
backward in time over the same lambda and B u, read by its own C; `causal=True` keeps the forward
scan. nu, theta, gamma and B take `ssm_lr` and no weight decay (the LRU code's "ssm" group).
Axis letters: B batch, L time, H channels, N complex states.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.ops.diagonal_recurrence import SCAN_BACKENDS, diagonal_recurrence
from models.ops.dispatch import backend_override
from models.ssm.complex_projection import complex_to_real, real_to_complex
from models.ssm.gated_output import GatedOutput
from models.ssm.parameters import as_complex, ssm_parameter


class LRU(nn.Module):
    """LRU layer.

    d_model: H.  d_state: N complex states.  r_min, r_max: ring of the initial |lambda|.
    max_phase: initial arg(lambda) in [0, max_phase] (the paper restricts it, e.g. to pi/10, on
    PathX).  ssm_lr: learning rate of nu, theta, gamma, B.  dropout: in the output stage.
    causal: forward scan only.  scan: 'chunked' | 'fft' | 'steps', the CPU form of the diagonal
    recurrence (on CUDA the run's kernel settings choose: Triton under `auto`); chunk: its size.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H);  reference(x, mask): the same with the
    recurrence run step by step.
    """

    ops = ("diagonal_recurrence",)

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        r_min: float = 0.0,
        r_max: float = 0.99,
        max_phase: float = 2 * math.pi,
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
        self.causal = causal
        # |lambda|^2 uniform in [r_min^2, r_max^2] (uniform on the ring's area), phase uniform.
        u1, u2 = torch.rand(d_state, dtype=torch.float64), torch.rand(d_state, dtype=torch.float64)
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = torch.log(max_phase * u2)
        modulus = torch.exp(-torch.exp(nu_log))
        gamma_log = torch.log(torch.sqrt(1 - modulus**2))
        self.nu_log = ssm_parameter(nu_log.float(), ssm_lr)
        self.theta_log = ssm_parameter(theta_log.float(), ssm_lr)
        self.gamma_log = ssm_parameter(gamma_log.float(), ssm_lr)
        # Glorot-like: B's real and imaginary parts N(0, 1/(2H)), C's N(0, 1/N).
        b = torch.randn(d_state, d_model, 2) / math.sqrt(2 * d_model)
        self.b = ssm_parameter(b, ssm_lr)
        directions = 1 if causal else 2
        self.c = nn.Parameter(torch.randn(directions, d_model, d_state, 2) / math.sqrt(d_state))
        self.D = nn.Parameter(torch.randn(d_model))
        self.output = GatedOutput(d_model, "full_glu", dropout)

    def log_lambda(self) -> torch.Tensor:
        """log lambda = -exp(nu_log) + i exp(theta_log), (N,)."""
        return torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        log_lambda = self.log_lambda()
        b = as_complex(self.b) * torch.exp(self.gamma_log)[:, None]  # gamma-normalised B
        v = real_to_complex(x, b)  # (B, L, N); zero at padded positions, as x is
        c = as_complex(self.c)
        y = complex_to_real(self._scan(log_lambda, v), c[0])
        if not self.causal:
            y = y + complex_to_real(self._scan(log_lambda, v, reverse=True), c[1])
        return self.output(y + self.D * x)

    def _scan(self, log_lambda: torch.Tensor, v: torch.Tensor, reverse: bool = False):
        return diagonal_recurrence(
            log_lambda, v, reverse=reverse, chunk=self.chunk, cpu_form=self.scan_backend
        )

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with backend_override("reference"):
            return self(x, mask)
