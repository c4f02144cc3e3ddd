"""Input encoders: token ids (B, L) -> embeddings (B, L, D), the backbone's first stage.

`embedding` is LRA's: a lookup table per token id, for text and pixels alike (LRA's image tasks
embed the 256 gray levels as tokens). `linear` is the S4 repository's encoder for images: the
pixel's intensity as a real number, normalised to [-1, 1] (torchvision's Normalize(0.5, 0.5) on
[0, 1]), through one Linear(1, D). It knows that neighbouring gray levels are alike, which a
table must learn level by level; it is meaningful only where the token id is an intensity
(Image, Pathfinder, Path-X), and the runner refuses it elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenEmbedding(nn.Embedding):
    """A table of vocab_size vectors, initialised N(0, 1) as LRA's token embeddings.
    forward(tokens: (B, L) long) -> (B, L, D)."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__(vocab_size, d_model)
        nn.init.normal_(self.weight, std=1.0)


class IntensityEncoder(nn.Module):
    """Linear(1, D) of the intensity id / (vocab_size - 1) * 2 - 1, so ids 0..vocab_size-1
    map to [-1, 1] (the S4 repository's `encoder: linear` on normalised pixels).
    forward(tokens: (B, L) long) -> (B, L, D), in the projection's dtype."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"an intensity encoder needs at least 2 levels, got {vocab_size}")
        self.levels = vocab_size - 1
        self.proj = nn.Linear(1, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        value = tokens.to(self.proj.weight.dtype) * (2.0 / self.levels) - 1.0
        return self.proj(value.unsqueeze(-1))


ENCODERS = {"embedding": TokenEmbedding, "linear": IntensityEncoder}
