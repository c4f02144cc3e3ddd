"""State-space building blocks shared by the zoo's mixers (models/mixers/).

Linear time-invariant (LTI) pieces:
- hippo.py: HiPPO-LegS matrices, their normal / diagonal plus low-rank forms, and the diagonal
  initialisations of S4D (LegS, Inv, Lin), DSS (skew-HiPPO) and S5 (block HiPPO-N).
- lti_kernels.py: convolution kernels of LTI systems: S4's Cauchy + Woodbury algorithm for the
  bilinear DPLR system, and the Vandermonde product of diagonal systems.
- fft_conv.py: causal or bidirectional long convolution by FFT, and its direct O(L^2) twin.
- diagonal_scan.py: the complex diagonal recurrence x_t = lambda * x_{t-1} + v_t (S5, LRU) by
  FFT, by chunks, or step by step.
- dplr_kernel.py, diagonal_kernel.py, dss_kernel.py, shift_kernel.py: the parameterised SSM
  kernels of S4, S4D (and H3), DSS, and H3's shift SSM.
- lti_layer.py: the S4 layer around a kernel (convolution + D skip -> GELU -> Linear -> GLU).
- hyena_filter.py: Hyena's implicit long filters (positional encoding -> Sin FFN -> window).
- gated_output.py: the GELU / GLU output stages of S5 and LRU.
- parameters.py, complex_projection.py: SSM parameter tagging (own learning rate, no weight
  decay), complex parameters stored as real pairs, real <-> complex projections.

Selective and gated pieces (Mamba, Mamba-2, GLA, RetNet) live in selective_scan.py, ssd.py and
chunked_gated.py.
"""
