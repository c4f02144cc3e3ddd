"""The shared backbone: embed -> pre-norm blocks (mixer + feed-forward) -> final norm -> pool ->
classifier head. Only the mixer differs between zoo models, so comparisons are like for like.

Axis letters in shapes: B batch, L sequence length, D model width, C classes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from models.encoders import ENCODERS
from models.layers.dropout import Dropout
from models.pooling import POOLING
from models.positions import POSITIONS


def mixer_arguments(
    factory: Callable[..., nn.Module],
    d_model: int,
    max_length: int,
    layer_index: int = 0,
    n_layers: int = 1,
) -> dict:
    """The arguments the backbone gives a mixer factory: d_model always; max_length (the
    longest sequence, [CLS] included) to a mixer that takes it (learned per-position weights,
    projections over the sequence); layer_index and n_layers to one that takes them
    (depth-dependent initialisation, RWKV-6)."""
    accepted = inspect.signature(factory).parameters
    arguments = {"d_model": d_model}
    if "max_length" in accepted:
        arguments["max_length"] = max_length
    if "layer_index" in accepted:
        arguments.update(layer_index=layer_index, n_layers=n_layers)
    return arguments


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D, d_ff) -> GELU -> dropout -> Linear(d_ff, D) -> dropout.
    forward(x: (B, L, D)) -> (B, L, D)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(d_ff, d_model),
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm residual block (as LRA's Transformer): x + mixer(LN(x)), then x + FFN(LN(x)).

    forward(x: (B, L, D), mask: (B, L) bool, carry=None) -> (x (B, L, D), carry). A mixer with
    `forward_carry(x, mask, carry) -> (y, carry)` passes state up the stack (Luna's packed P);
    for any other mixer the carry goes through unchanged (None).
    """

    def __init__(self, d_model: int, mixer: nn.Module, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.mixer_norm = nn.LayerNorm(d_model)
        self.mixer = mixer
        self.mixer_dropout = Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout) if d_ff > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, carry=None):
        # Zero the padded positions of the mixer input so that a mixer that sums along the
        # sequence (convolution, FFT, scan) cannot carry padding into real positions.
        h = self.mixer_norm(x) * mask.unsqueeze(-1).to(x.dtype)
        if hasattr(self.mixer, "forward_carry"):
            y, carry = self.mixer.forward_carry(h, mask, carry)
        else:
            y = self.mixer(h, mask)
        x = x + self.mixer_dropout(y)
        if self.ffn is not None:
            x = x + self.ffn(self.ffn_norm(x))
        return x, carry


class ClassifierHead(nn.Module):
    """LRA's head: Linear(D_in, hidden) -> ReLU -> Linear(hidden, C).
    forward((B, D_in)) -> (B, C)."""

    def __init__(self, d_in: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class SequenceClassifier(nn.Module):
    """Token sequence -> class logits.

    vocab_size, num_classes, max_length: from the task (filled in by the runner).
    mixer: a factory `mixer(d_model=D) -> nn.Module` (a Hydra `_partial_` config); one per layer.
        A mixer whose constructor takes `max_length` (learned per-position weights, projections
        over the sequence) also gets the longest sequence it will see, [CLS] included; one that
        takes `layer_index` gets its block's index and `n_layers` (depth-dependent init).
    encoder: 'embedding' (a table per token id, LRA's) | 'linear' (Linear(1, D) of the
    normalised intensity, the S4 repository's for images; pixel tasks only) (models/encoders.py).
    pixel_norm: (mean, std) of the linear encoder's Normalize on [0, 1] gray levels; null =
    (0.5, 0.5), onto [-1, 1]. Only with encoder 'linear'.
    positions: 'sinusoidal' | 'learned' | 'none'.  pooling: 'cls' (prepends a learned [CLS]
    token) | 'mean' (masked) | 'last' (last real position).  head_hidden: head MLP width
    (LRA's mlp_dim); defaults to d_ff.
    pair: two-tower mode for document matching (Retrieval; set by the runner from the task, the
        model config stays the same): both documents go through the one shared encoder, with no
        attention across them, and the head classifies [u, v, u * v, u - v] of their pooled
        features u and v (LRA paper, App. A.1.3).

    The stages: `embed` (token ids -> (B, L, D)), `run_blocks` ([CLS], positions, the blocks,
    the final norm: per-position states), `pool`, `head`. `encode` is the first three;
    `hidden_states` the first two per position, which self-pretraining reads.

    forward(tokens: (B, L) long, lengths: (B,) long) -> logits (B, C); in pair mode
    tokens (B, 2, L) and lengths (B, 2). Positions >= lengths are padding and never change the
    logits.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        mixer: Callable[..., nn.Module],
        d_model: int = 64,
        n_layers: int = 2,
        d_ff: int = 128,
        dropout: float = 0.1,
        positions: str = "sinusoidal",
        pooling: str = "cls",
        head_hidden: int | None = None,
        pair: bool = False,
        encoder: str = "embedding",
        pixel_norm: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"model.backbone.encoder={encoder!r}; choose from {sorted(ENCODERS)}")
        if pixel_norm is not None and encoder != "linear":
            raise ValueError(
                f"model.backbone.pixel_norm={list(pixel_norm)} normalises the linear encoder's"
                f" gray levels; encoder is {encoder!r}"
            )
        if pixel_norm is not None and len(pixel_norm) != 2:
            raise ValueError(f"model.backbone.pixel_norm={list(pixel_norm)}: give [mean, std]")
        if pooling not in POOLING:
            raise ValueError(f"model.backbone.pooling={pooling!r}; choose from {sorted(POOLING)}")
        if positions not in POSITIONS:
            raise ValueError(
                f"model.backbone.positions={positions!r}; choose from {sorted(POSITIONS)}"
            )
        self.pooling = pooling
        self.pool = POOLING[pooling]
        self.d_model = d_model
        norm = {} if pixel_norm is None else dict(zip(("mean", "std"), pixel_norm))
        self.embed = ENCODERS[encoder](vocab_size, d_model, **norm)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        extra = 1 if self.cls is not None else 0
        self.positions = POSITIONS[positions](max_length + extra, d_model)
        self.embed_dropout = Dropout(dropout)
        blocks = [
            Block(
                d_model,
                mixer(**mixer_arguments(mixer, d_model, max_length + extra, i, n_layers)),
                d_ff,
                dropout,
            )
            for i in range(n_layers)
        ]
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = nn.LayerNorm(d_model)
        self.pair = pair
        features = 4 * d_model if pair else d_model  # pair: [u, v, u * v, u - v]
        self.head = ClassifierHead(features, head_hidden or d_ff or d_model, num_classes)

    def run_blocks(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings x (B, L, D) with `lengths` real positions each -> (states, mask):
        the states (B, L', D) after the final norm and mask (B, L') bool of real positions,
        L' = L + 1 with the [CLS] position first when pooling is 'cls', else L."""
        mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        x = self.embed_dropout(self.positions(x))
        carry = None  # state a mixer passes up the stack (see Block)
        for block in self.blocks:
            x, carry = block(x, mask, carry)
        return self.final_norm(x), mask

    def hidden_states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-position states (B, L, D) of token embeddings x (B, L, D), after the final norm,
        the [CLS] position (when there is one) left out: what a self-pretraining head reads
        (models/pretraining.py). States at padded positions are not meaningful."""
        states, _ = self.run_blocks(x, lengths)
        return states[:, 1:] if self.cls is not None else states

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, D) of tokens (B, L) with `lengths` real positions each."""
        return self.pool(*self.run_blocks(self.embed(tokens), lengths))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.pair:
            return self.head(self.encode(tokens, lengths))
        # Both documents of every pair in one batch of 2B sequences through the shared encoder.
        batch = tokens.shape[0]
        features = self.encode(tokens.flatten(0, 1), lengths.flatten())
        u, v = features.view(batch, 2, -1).unbind(1)
        return self.head(torch.cat([u, v, u * v, u - v], dim=-1))

    def kernel_backends(self) -> dict[str, str]:
        """{mixer class: what computed it} for the run record: the backends of the ops
        (models/ops) that the mixer ran since the last `models.ops.reset_report()`, and the
        mixer's own `backend` where part of it is not an op. Read it after the run."""
        from models.ops import report

        backends = {}
        for module in self.modules():
            parts = []
            own = getattr(module, "backend", None)
            if isinstance(own, str):
                parts.append(own)
            ran = report(getattr(module, "ops", ()))
            parts += [f"{op}: {label}" for op, label in ran.items()]
            if parts:
                backends[type(module).__name__] = "; ".join(parts)
        return backends
