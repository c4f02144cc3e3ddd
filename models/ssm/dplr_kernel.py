"""The S4 kernel (Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with Structured State
Spaces"): a diagonal-plus-low-rank (DPLR) state matrix A = diag(Lambda) - P P^* initialised from
HiPPO-LegS, bilinear discretisation, and the kernel from a Cauchy sum with the Woodbury
correction (models/ops/dplr_kernel).

The output matrix is stored as S4's C~ = C (I - A_bar^L) for the fixed kernel length L (the
longest sequence the model sees): then the generating function at the L roots of unity is the
truncated kernel. At initialisation C is complex normal and C~ is computed from it, as S4 does
when it first sets up its kernel. Shorter inputs use the first positions of the length-L kernel,
so an example's output never depends on how much padding its batch has.

A (log_a_real, a_imag), P, B and dt take `ssm_lr` and no weight decay; C~ the model's settings.
Axis letters: b batch, c kernel channels, h channels, n modes (N/2), m full state (N), l time.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ops.dplr_kernel import dplr_kernel
from models.ops.dplr_kernel.reference import bilinear_dense, true_readout, with_conjugates
from models.ssm.hippo import legs_diagonal_plus_low_rank
from models.ssm.parameters import as_complex, log_uniform, ssm_parameter


class DPLRKernel(nn.Module):
    """S4 kernel.

    d_model: H channels.  d_state: N, the real state size (N/2 complex modes).  channels: kernels
    per channel (2 for a bidirectional layer).  length: the kernel length L (C~ is tied to it).
    dt_min, dt_max: log-uniform step initialisation (S4 uses dt_min = 1e-4 on Path-X).
    ssm_lr: learning rate of A, P, B, dt.

    kernel(length <= L) -> (channels, H, length);  recurrence(u: (B, H, l)) -> (B, channels, H, l)
    runs the dense N-state system x_l = A_bar x_{l-1} + B_bar u_l, y_l = C x_l step by step.
    """

    ops = ("dplr_kernel",)

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        length: int = 1024,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        self.length = length
        lam, p, b, _ = legs_diagonal_plus_low_rank(d_state)
        lam, p, b = (x.expand(d_model, -1) for x in (lam, p, b))
        self.log_dt = ssm_parameter(log_uniform((d_model,), dt_min, dt_max), ssm_lr)
        self.log_a_real = ssm_parameter(torch.log(-lam.real).float(), ssm_lr)
        self.a_imag = ssm_parameter(lam.imag.float().clone(), ssm_lr)
        self.p = ssm_parameter(torch.view_as_real(p.to(torch.complex64)).clone(), ssm_lr)
        self.b = ssm_parameter(torch.view_as_real(b.to(torch.complex64)).clone(), ssm_lr)
        c = torch.randn(channels, d_model, d_state // 2, dtype=torch.complex128)
        with torch.no_grad():
            a_bar, _ = bilinear_dense(*self._continuous(torch.float64))
            power = torch.linalg.matrix_power(a_bar, length)  # (H, m, m)
            c_full = with_conjugates(c)
            c_tilde = c_full - torch.einsum("chm,hmk->chk", c_full, power)
        c_tilde = c_tilde[..., : d_state // 2].to(torch.complex64)
        self.c = nn.Parameter(torch.view_as_real(c_tilde).clone())

    def _continuous(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
        """(dt (H,), Lambda, P, B (H, N/2)) in the parameters' precision or `dtype`."""
        params = [self.log_dt, self.log_a_real, self.a_imag, self.p, self.b]
        if dtype is not None:
            params = [x.detach().to(dtype) for x in params]
        log_dt, log_a_real, a_imag, p, b = params
        lam = -torch.exp(log_a_real) + 1j * a_imag
        return torch.exp(log_dt), lam, as_complex(p), as_complex(b)

    def kernel(self, length: int) -> torch.Tensor:
        if length > self.length:
            raise ValueError(
                f"S4 kernel length is {self.length} (the model's max_length); got a sequence of "
                f"{length}"
            )
        dt, lam, p, b = self._continuous()
        return dplr_kernel(dt, lam, p, b, as_complex(self.c), self.length)[..., :length]

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        a_bar, b_bar = bilinear_dense(*self._continuous())
        c = true_readout(a_bar, as_complex(self.c), self.length)  # C from C~
        x = torch.zeros(u.shape[0], *b_bar.shape, dtype=b_bar.dtype, device=u.device)
        outputs = []
        for u_t in u.unbind(-1):
            x = torch.einsum("hmk,bhk->bhm", a_bar, x) + b_bar * u_t[..., None]
            outputs.append(torch.einsum("chm,bhm->bch", c, x).real)
        return torch.stack(outputs, dim=-1)
