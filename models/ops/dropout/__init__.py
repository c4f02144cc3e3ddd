"""Dropout (Srivastava et al., 2014) with a counter-based mask: each element of x zeroed with
probability p, the rest scaled by 1 / (1 - p), the mask a pure function of (seed, element
index) by Philox4x32-10 (reference.py says exactly how), so that every form draws the same mask
and the backward draws it again rather than storing it.

Backends: `reference` (the Philox words in int64 PyTorch arithmetic, any device), `cpu` (a
compiled, vectorised C++ kernel over torch's threads; built on first use, passed over with one
line where it cannot be built). The model layer (models/layers/dropout.py) draws the seed from
torch's generator and runs this op on CPU; on CUDA it runs torch's own fused dropout.
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "dropout",
    [
        Backend("reference", "models.ops.dropout.reference:dropout_reference"),
        compiled_cpu_backend("models.ops.dropout.cpu:dropout_cpu"),
    ],
    auto={"cuda": ("reference",), "cpu": ("cpu", "reference")},
)


def dropout(x: torch.Tensor, p: float, seed: int, *, backend: str | None = None) -> torch.Tensor:
    """x: any shape, floating.  p: probability of zeroing an element, in [0, 1].  seed: int in
    [0, 2^63), the mask's key.  backend: None = the run's kernel settings.  Returns y of x's
    shape and dtype: x / (1 - p) where kept, 0 elsewhere (0 everywhere at p = 1)."""
    return OP(x, p, seed, backend=backend)
