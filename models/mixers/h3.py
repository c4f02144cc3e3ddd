"""H3 (Fu, Dao, Saab, Thomas, Rudra & Ré, 2023, "Hungry Hungry Hippos: Towards Language Modeling
with State Space Models", ICLR), with head dimension 1:

    q, k, v = Linear(u)
    y = Linear(q * SSM_diag(SSM_shift(k) * v))

SSM_shift is the shift SSM (a learned short filter over the last N inputs, plus a skip) and
SSM_diag the diagonal S4D SSM with the S4D-Lin initialisation and its D skip, as in the H3 code.

Bidirectional form for the LRA (H3 is causal): the diagonal SSM gets a second kernel backward in
time, as S4's bidirectional layer does; the shift SSM, H3's local "previous tokens" memory, stays
causal. `causal=True` is the paper's layer. k and v have biases, so they are masked to zero at
padded positions before the SSMs.
Axis letters: B batch, L time, H width.
"""

from __future__ import annotations

import torch
from torch import nn

from models.ops.fft_conv import long_conv
from models.ssm.diagonal_kernel import DiagonalKernel
from models.ssm.lti_layer import convolve, convolve_steps
from models.ssm.shift_kernel import ShiftKernel


class H3(nn.Module):
    """H3 layer.

    d_model: H.  d_state: N, the shift SSM's taps and the diagonal SSM's real state size.
    init: the diagonal SSM's S4D initialisation ('lin' in H3).  dt_min, dt_max: its step range.
    ssm_lr: learning rate (no weight decay) of both SSMs' A, B, dt.  causal: the paper's layer.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H) with FFT convolutions;  reference(x, mask):
    the same with both SSMs run step by step.
    """

    ops = ("fft_conv", "vandermonde")

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.shift = ShiftKernel(d_model, d_state, ssm_lr)
        self.shift_D = nn.Parameter(torch.randn(d_model))
        self.diagonal = DiagonalKernel(
            d_model, d_state, 1 if causal else 2, init, dt_min, dt_max, ssm_lr
        )
        self.D = nn.Parameter(torch.randn(d_model))
        self.out_proj = nn.Linear(d_model, d_model)

    def _mix(self, x: torch.Tensor, mask: torch.Tensor, steps: bool) -> torch.Tensor:
        real = mask[:, None, :].to(x.dtype)  # (B, 1, L)
        q = self.q_proj(x).transpose(1, 2)
        k = self.k_proj(x).transpose(1, 2) * real
        v = self.v_proj(x).transpose(1, 2) * real
        if steps:
            shifted = self.shift.recurrence(k)
            kv_conv = convolve_steps
        else:
            shifted = long_conv(k, self.shift.kernel(k.shape[-1]))
            kv_conv = convolve
        kv = (shifted + self.shift_D[:, None] * k) * v
        y = kv_conv(self.diagonal, kv, not self.causal) + self.D[:, None] * kv
        return self.out_proj((q * y).transpose(1, 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, steps=False)

    def reference(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._mix(x, mask, steps=True)
