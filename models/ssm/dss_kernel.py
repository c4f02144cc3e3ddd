"""The DSS_softmax kernel (Gupta, Gu & Berant, 2022, "Diagonal State Spaces are as Effective as
Structured State Spaces", Proposition 1 and section 3.2).

A diagonal state space with eigenvalues lambda_n (shared by all channels), step dt_h and output
weights w_hn has the kernel

    K_l = Re sum_n w_n / lambda_n * softmax_l(dt lambda_n l),   l = 0..L-1,

the softmax normalising over the L positions, i.e. K_l = Re sum_n c_n exp(dt lambda_n l) with
c_n = w_n (exp(dt lambda_n) - 1) / (lambda_n (exp(L dt lambda_n) - 1)). Because of the
normalisation Re lambda may become positive in training; for those modes the exponent is shifted
by its maximum, dt lambda (L - 1), as the DSS code does, so the powers stay bounded. Unlike the
DSS code the shift is not detached from the graph: the kernel is the same, and so its gradient is
the exact one. 1/x is DSS's bounded reciprocal conj(x) / (|x|^2 + eps).

L is the fixed kernel length (the model's max_length), so the normalisation, and with it an
example's output, does not depend on its batch's padding. DSS's defaults: Lambda from the skew
part of HiPPO (models/ssm/hippo.py), w complex standard normal, separate steps for the real and
imaginary parts of lambda, and learning rate 1e-3 with no weight decay for dt, Lambda and W.
Axis letters: b batch, c kernel channels, h channels, n modes, l time.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ops.vandermonde import vandermonde
from models.ssm.hippo import dss_skew_hippo
from models.ssm.parameters import as_complex, log_uniform, ssm_parameter


def bounded_reciprocal(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """DSS's 1 / x = conj(x) / (|x|^2 + epsilon), bounded near 0."""
    return x.conj() / (x * x.conj() + epsilon)


class DSSKernel(nn.Module):
    """DSS_softmax kernel.

    d_model: H channels.  d_state: N complex modes (DSS's N; the real state is 2N).  channels:
    kernels per channel (2 for bidirectional).  length: the kernel length L.  dt_min, dt_max:
    log-uniform step initialisation.  ssm_lr: learning rate of dt, Lambda and W.  epsilon: of the
    bounded reciprocal.

    kernel(length <= L) -> (channels, H, length);  recurrence(u: (B, H, l)) -> (B, channels, H, l)
    runs x_l = exp(dt lambda) x_{l-1} + u_l, y_l = Re(c x_l) step by step.
    """

    ops = ("vandermonde",)

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        length: int = 1024,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__()
        self.length = length
        self.epsilon = epsilon
        # One step for the real parts and one for the imaginary parts, initialised equal.
        log_dt = log_uniform((d_model, 1), dt_min, dt_max).expand(-1, 2).clone()
        self.log_dt = ssm_parameter(log_dt, ssm_lr)
        lam = dss_skew_hippo(d_state).to(torch.complex64)
        self.lam = ssm_parameter(torch.view_as_real(lam).clone(), ssm_lr)
        w = torch.view_as_real(torch.randn(channels, d_model, d_state, dtype=torch.complex64))
        self.w = ssm_parameter(w.clone() * 2**0.5, ssm_lr)  # DSS: real and imag parts N(0, 1)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dt lambda (H, N), c (channels, H, N), shift (H, N)) with
        K_l = Re sum_n c_n exp(l dt lambda_n - shift_n)."""
        lam = as_complex(self.lam)
        dt = torch.exp(self.log_dt)
        dt_lam = dt[:, :1] * lam.real + 1j * dt[:, 1:] * lam.imag  # (H, N)
        growing = lam.real > 0
        # Growing modes: use exp(-dt lambda) in the normaliser and shift the exponent by its
        # largest value, dt lambda (L - 1); both forms equal (exp(dt l) - 1) / (exp(dt l L) - 1).
        flipped = torch.where(growing, -dt_lam, dt_lam)
        numerator = torch.expm1(flipped)
        denominator = torch.expm1(flipped * self.length)
        shift = torch.where(growing, dt_lam * (self.length - 1), torch.zeros_like(dt_lam))
        scale = numerator * bounded_reciprocal(denominator * lam, self.epsilon)
        return dt_lam, as_complex(self.w) * scale, shift

    def kernel(self, length: int) -> torch.Tensor:
        if length > self.length:
            raise ValueError(
                f"DSS kernel length is {self.length} (the model's max_length); got a sequence of "
                f"{length}"
            )
        dt_lam, c, shift = self.discrete()
        return vandermonde(c, dt_lam, length, shift).real

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        dt_lam, c, shift = self.discrete()
        c = c * torch.exp(-shift)
        a_bar = torch.exp(dt_lam)
        x = torch.zeros(*u.shape[:2], dt_lam.shape[-1], dtype=dt_lam.dtype, device=u.device)
        outputs = []
        for u_t in u.unbind(-1):
            x = a_bar * x + u_t[..., None]
            outputs.append(torch.einsum("chn,bhn->bch", c, x).real)
        return torch.stack(outputs, dim=-1)
