"""S4D (Gu, Gupta, Goel & Ré, 2022, "On the Parameterization and Initialization of Diagonal State
Space Models", NeurIPS): a diagonal state matrix with the S4D-LegS, S4D-Inv or S4D-Lin
initialisation, zero-order-hold discretisation, a Vandermonde kernel applied by FFT convolution,
inside the S4 layer (convolution + D skip -> GELU -> Linear -> GLU).

The LRA runs use the S4 repository's bidirectional configs (default here); `causal=True` keeps
only the forward kernel.
"""

from __future__ import annotations

from models.ssm.diagonal_kernel import DiagonalKernel
from models.ssm.lti_layer import ConvolutionalSSMLayer


class S4D(ConvolutionalSSMLayer):
    """S4D layer.

    d_model: H.  d_state: N (real state size; N/2 complex modes).  init: 'legs' | 'inv' | 'lin'.
    dt_min, dt_max: step initialisation range.  ssm_lr: learning rate (no weight decay) of A, B,
    dt.  dropout: after the GELU.  causal: forward kernel only.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H);  reference(x, mask): the same through the
    diagonal recurrence, step by step.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        init: str = "legs",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        ssm_lr: float = 1e-3,
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        kernel = DiagonalKernel(d_model, d_state, 1 if causal else 2, init, dt_min, dt_max, ssm_lr)
        super().__init__(kernel, d_model, bidirectional=not causal, dropout=dropout)
