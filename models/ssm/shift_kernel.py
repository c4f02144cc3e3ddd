"""H3's shift SSM (Fu, Dao, Saab, Thomas, Rudra & Ré, 2023, "Hungry Hungry Hippos: Towards
Language Modeling with State Space Models", section 3.1).

A is the N x N shift matrix: the state holds the last N inputs, pushed one slot per step,

    x_t = shift(x_{t-1}) + B u_t,   y_t = C x_t,

so the kernel is the cross-correlation k_m = sum_j C_{m+j} B_j for m < N and 0 beyond: a
learned short filter. As in the H3 code, B starts at e_1 (then k = C), B takes the SSM learning
rate and no weight decay, and C starts like a Conv1d weight, U(-1/sqrt(N), 1/sqrt(N)).
Axis letters: b batch, h channels, n state (taps), l time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.ssm.parameters import ssm_parameter


class ShiftKernel(nn.Module):
    """d_model: H channels.  d_state: N taps.  ssm_lr: learning rate of B.

    kernel(length) -> (H, length);  recurrence(u: (B, H, L)) -> (B, H, L), the shift register
    run step by step.
    """

    def __init__(self, d_model: int, d_state: int = 64, ssm_lr: float = 1e-3) -> None:
        super().__init__()
        b = torch.zeros(d_model, d_state)
        b[:, 0] = 1.0
        self.b = ssm_parameter(b, ssm_lr)
        bound = d_state**-0.5
        self.c = nn.Parameter(torch.empty(d_model, d_state).uniform_(-bound, bound))

    def kernel(self, length: int) -> torch.Tensor:
        n = self.b.shape[-1]
        # Cross-correlation of B and C by FFT, zero-padded to 2N so nothing wraps around.
        spectrum = torch.fft.rfft(self.b, n=2 * n).conj() * torch.fft.rfft(self.c, n=2 * n)
        taps = torch.fft.irfft(spectrum, n=2 * n)[..., :n]
        return F.pad(taps, (0, length - n)) if length > n else taps[..., :length]

    def recurrence(self, u: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(*u.shape[:2], self.b.shape[-1], dtype=u.dtype, device=u.device)
        outputs = []
        for u_t in u.unbind(-1):
            x = F.pad(x[..., :-1], (1, 0)) + self.b * u_t[..., None]  # push one slot, add B u
            outputs.append((self.c * x).sum(-1))
        return torch.stack(outputs, dim=-1)
