"""Input encoders: token ids (B, L) -> embeddings (B, L, D), the backbone's first stage.

`embedding` is LRA's: a lookup table per token id, for text and pixels alike (LRA's image tasks
embed the 256 gray levels as tokens). `linear` is the S4 repository's encoder for images: the
pixel's intensity as a real number on [0, 1] (torchvision's ToTensor), normalised as the source
does, (v - mean) / std, through one Linear(1, D). Sources differ: S4 centres Pathfinder with
Normalize(0.5, 0.5) by default (its LRA configs turn that off: [0, 1]), CIFAR with
(122.6 / 255, 61.0 / 255); Mega normalises pixels by (0.48, 0.24) (LRA_SPEC 5.1, 5.3).

The linear encoder knows that neighbouring gray levels are alike, which a table must learn level
by level; it is meaningful only where the token id is an intensity (Image, Pathfinder, Path-X),
and the runner refuses it elsewhere (lra_bench/stages.py, build_model).
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
    """Linear(1, D) of (id / (vocab_size - 1) - mean) / std: ids 0..vocab_size-1 are gray
    levels on [0, 1], normalised as torchvision's Normalize(mean, std) (the S4 repository's
    `encoder: linear` on real pixels). The defaults (0.5, 0.5) map them onto [-1, 1].
    forward(tokens: (B, L) long) -> (B, L, D), in the projection's dtype."""

    def __init__(self, vocab_size: int, d_model: int, mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"an intensity encoder needs at least 2 levels, got {vocab_size}")
        if not std > 0:
            raise ValueError(f"model.backbone.pixel_norm: std must be positive, got {std}")
        self.levels, self.mean, self.std = vocab_size - 1, float(mean), float(std)
        self.proj = nn.Linear(1, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        value = (tokens.to(self.proj.weight.dtype) / self.levels - self.mean) / self.std
        return self.proj(value.unsqueeze(-1))


ENCODERS = {"embedding": TokenEmbedding, "linear": IntensityEncoder}
