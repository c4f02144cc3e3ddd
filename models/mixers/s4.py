"""S4 (Gu, Goel & Ré, 2022, "Efficiently Modeling Long Sequences with Structured State Spaces",
ICLR): a diagonal-plus-low-rank state matrix initialised from HiPPO-LegS, discretised by the
bilinear transform, its kernel computed by a Cauchy sum with the Woodbury correction and applied
by FFT convolution, inside the S4 layer (convolution + D skip -> GELU -> Linear -> GLU).

On the LRA the S4 repository's configs are bidirectional (a second kernel runs backward in time),
which is the default here; `causal=True` keeps only the forward kernel.
"""

from __future__ import annotations

from models.ssm.dplr_kernel import DPLRKernel
from models.ssm.lti_layer import ConvolutionalSSMLayer


class S4(ConvolutionalSSMLayer):
    """S4 layer.

    d_model: H.  max_length: the longest sequence, the kernel length that C~ is tied to.
    d_state: N (real state size; N/2 complex modes).  dt_min, dt_max: step initialisation range
    (S4 uses dt_min = 1e-4 on Path-X).  ssm_lr: learning rate (no weight decay) of A, P, B, dt.
    dropout: after the GELU.  causal: forward kernel only.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H);  reference(x, mask): the same through the
    dense N-state recurrence, step by step.
    """

    def __init__(
        self,
        d_model: int,
        max_length: int,
        d_state: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        kernel = DPLRKernel(
            d_model, d_state, 1 if causal else 2, max_length, dt_min, dt_max, ssm_lr
        )
        super().__init__(kernel, d_model, bidirectional=not causal, dropout=dropout)
