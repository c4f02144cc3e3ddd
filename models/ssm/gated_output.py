"""The output stages after the SSM in S5 (Smith, Warrington & Linderman, 2023, s5/layers.py) and
the LRU (Orvieto et al., 2023, "full_glu"), with dropout after each nonlinearity:

- 'full_glu':  x = GELU(x);  x = W1 x * sigmoid(W2 x)
- 'half_glu1': x = GELU(x);  x = x * sigmoid(W2 x)
- 'half_glu2': x * sigmoid(W2 GELU(x))          (GELU only on the gate's input)
- 'gelu':      x = GELU(x)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.dropout import Dropout

GATED_OUTPUTS = ("full_glu", "half_glu1", "half_glu2", "gelu")


class GatedOutput(nn.Module):
    """d_model: H.  kind: one of GATED_OUTPUTS.  dropout: after each nonlinearity.
    forward(x: (B, L, H)) -> (B, L, H)."""

    def __init__(self, d_model: int, kind: str, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in GATED_OUTPUTS:
            raise ValueError(f"output {kind!r}; choose from {GATED_OUTPUTS}")
        self.kind = kind
        self.dropout = Dropout(dropout)
        self.out1 = nn.Linear(d_model, d_model) if kind == "full_glu" else None
        self.out2 = nn.Linear(d_model, d_model) if kind != "gelu" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.dropout(F.gelu(x))
        if self.kind == "gelu":
            return activated
        if self.kind == "full_glu":
            x = self.out1(activated) * torch.sigmoid(self.out2(activated))
        elif self.kind == "half_glu1":
            x = activated * torch.sigmoid(self.out2(activated))
        else:  # half_glu2
            x = x * torch.sigmoid(self.out2(activated))
        return self.dropout(x)
