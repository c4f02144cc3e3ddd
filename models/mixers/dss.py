"""DSS (Gupta, Gu & Berant, 2022, "Diagonal State Spaces are as Effective as Structured State
Spaces", NeurIPS): a diagonal state space whose kernel is DSS_softmax, w Lambda^-1
row-softmax(dt Lambda l), initialised from the skew part of HiPPO, applied by FFT convolution
inside the S4 layer skeleton DSS keeps (convolution + D skip -> GELU -> Linear -> GLU).

DSS is built on the S4 code base and its LRA layer; the default here is the bidirectional form
of that layer (a second kernel backward in time), `causal=True` the unidirectional one. The
softmax normalises over max_length, the fixed kernel length, so outputs do not depend on padding.
"""

from __future__ import annotations

from models.ssm.dss_kernel import DSSKernel
from models.ssm.lti_layer import ConvolutionalSSMLayer


class DSS(ConvolutionalSSMLayer):
    """DSS_softmax layer.

    d_model: H.  max_length: the kernel length the softmax normalises over.  d_state: N complex
    modes (DSS's N).  dt_min, dt_max: step initialisation range.  ssm_lr: learning rate (no
    weight decay) of dt, Lambda and W, as in the DSS code.  dropout: after the GELU.
    causal: forward kernel only.

    forward(x: (B, L, H), mask: (B, L)) -> (B, L, H);  reference(x, mask): the same through the
    diagonal recurrence, step by step.
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
        kernel = DSSKernel(d_model, d_state, 1 if causal else 2, max_length, dt_min, dt_max, ssm_lr)
        super().__init__(kernel, d_model, bidirectional=not causal, dropout=dropout)
