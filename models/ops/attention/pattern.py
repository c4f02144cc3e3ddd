"""Which keys a query may see: the patterns the attention op knows, as one small value type."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AttentionPattern:
    """Query i may attend to key j when j is a real position and

    - full (window and block_size None): always;
    - window w: |i - j| <= w;
    - block_size W: j lies in i's block of W positions, or (look_backward) in the block before;
    - and, with either, j < n_global: the first n_global keys are seen by every query
      (Longformer's global tokens; their own queries are the caller's business);
    - causal: in addition j <= i.
    """

    causal: bool = False
    window: int | None = None
    block_size: int | None = None
    look_backward: bool = False
    n_global: int = 0

    def __post_init__(self) -> None:
        if self.window is not None and self.block_size is not None:
            raise ValueError("an attention pattern has a window or blocks, not both")
        if (self.window is not None and self.window < 0) or self.n_global < 0:
            raise ValueError(f"need window >= 0 and n_global >= 0: {self}")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")

    @property
    def is_full(self) -> bool:
        return self.window is None and self.block_size is None

    def allowed(self, length: int, device: torch.device) -> torch.Tensor:
        """The dense (L, L) bool matrix of the pattern (True = may attend), without padding."""
        i = torch.arange(length, device=device)[:, None]
        j = torch.arange(length, device=device)[None, :]
        allowed = torch.ones(length, length, dtype=torch.bool, device=device)
        if self.window is not None:
            allowed = (i - j).abs() <= self.window
        elif self.block_size is not None:
            lag = i // self.block_size - j // self.block_size
            allowed = (lag == 0) | ((lag == 1) & self.look_backward)
        if not self.is_full and self.n_global:
            allowed = allowed | (j < self.n_global)
        if self.causal:
            allowed = allowed & (j <= i)
        return allowed


FULL = AttentionPattern()  # every real key, both directions
