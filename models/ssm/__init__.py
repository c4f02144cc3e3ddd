"""State-space building blocks shared by the zoo's mixers (models/mixers/): parameterisations and
layers. The computations they run (kernels, convolutions, scans) are ops in models/ops/.

- hippo.py: HiPPO-LegS matrices, their normal / diagonal plus low-rank forms, and the diagonal
  initialisations of S4D (LegS, Inv, Lin), DSS (skew-HiPPO) and S5 (block HiPPO-N).
- dplr_kernel.py, diagonal_kernel.py, dss_kernel.py, shift_kernel.py: the parameterised SSM
  kernels of S4, S4D (and H3), DSS, and H3's shift SSM, each with its step-by-step recurrence.
- lti_layer.py: the S4 layer around a kernel (convolution + D skip -> GELU -> Linear -> GLU).
- hyena_filter.py: Hyena's implicit long filters (positional encoding -> Sin FFN -> window).
- gated_output.py: the GELU / GLU output stages of S5 and LRU.
- parameters.py, complex_projection.py: SSM parameters (log-uniform steps, complex parameters
  stored as real pairs), real <-> complex projections.
"""
