"""The computational cores of the zoo, one folder per op, each with its forms side by side:
`reference.py` (plain PyTorch, the oracle), a PyTorch fast form (`chunked.py`, or `fft.py` /
`cauchy.py` where that is what it is), `triton.py` (GPU kernels) and `cpu.py` (a compiled CPU
kernel) where they exist. Mixers (models/mixers/) call ops and never hold the math of a scan.

| op                     | used by                                                          |
|------------------------|------------------------------------------------------------------|
| attention              | transformer, sliding_window, local_attention, longformer         |
| selective_scan         | mamba                                                            |
| ssd                    | mamba2, retnet                                                   |
| gated_linear_attention | gla, rwkv6; causal linear_transformer, performer, cosformer      |
| vandermonde            | s4d, dss, h3                                                     |
| dplr_kernel            | s4                                                               |
| fft_conv               | s4, s4d, dss, h3, hyena, mega                                    |
| diagonal_recurrence    | s5, lru                                                          |
| causal_conv1d          | mamba, mamba2; nystromformer's value convolution                 |
| lsh_bias               | reformer                                                         |

How a backend is chosen, and what the run record says about it: models/ops/dispatch.py.
"""

from models.ops.dispatch import (
    BackendUnavailable,
    backend_override,
    configure,
    registered_ops,
    report,
    reset_report,
)

__all__ = [
    "BackendUnavailable",
    "backend_override",
    "configure",
    "registered_ops",
    "report",
    "reset_report",
]
