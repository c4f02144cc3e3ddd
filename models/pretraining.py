"""Self-pretraining (SPT, Amos, Berant & Gupta, ICLR 2024; LRA_SPEC 5.8): a zoo backbone run per
position, with what only pretraining needs around it.

    masked:  some positions' inputs are hidden, the model predicts them (bidirectional mixers)
    causal:  the model predicts each next element from those before it (causal mixers)

The wrapper owns two things the classifier never sees, both dropped when fine-tuning starts:

- `mask_vector` (D,): how a hidden position enters. Token inputs (`masking='token'`): a masked
  token's embedding is replaced by it, which is a dedicated mask id. Pixel inputs
  (`masking='pixel'`): the pixel is zeroed (embedded as value 0) and the vector is added, which is
  the paper's second input channel carrying the mask indicator (a linear embedding of
  [value, indicator] is value * w1 + indicator * w2; with a lookup table, embed(0) + w2).
- `lm_head`: Linear(D, vocab) for `target='token'` (for pixel tasks the vocabulary is the 256
  gray levels, so this is the paper's 256-way pixel classification), or Linear(D, 1) for
  `target='l1'` (regression on the pixel value scaled to [0, 1], the paper's Image setting).

The backbone's classifier head is not part of pretraining: the wrapper removes it, so that the
pretraining checkpoint holds `backbone.*` (everything fine-tuning loads), `mask_vector` and
`lm_head.*`. `load_pretrained_backbone` puts those backbone weights into a fresh classifier.

Axis letters: B batch, L length, D width, V vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.backbone import SequenceClassifier

OBJECTIVES = ("masked", "causal")
MASKINGS = ("token", "pixel")
TARGETS = ("token", "l1")
PIXEL_LEVELS = 255.0  # an 8-bit pixel value v is regressed as v / 255 in [0, 1]
BACKBONE_PREFIX = "backbone."


class PretrainingModel(nn.Module):
    """A SequenceClassifier's embedding and blocks with a per-position prediction head.

    backbone: the classifier to pretrain (its head is removed). vocab_size: the task's.
    objective: 'masked' | 'causal'. masking: 'token' | 'pixel' (how a masked position enters;
    unused by 'causal'). target: 'token' (V-way) | 'l1' (scalar).

    forward(tokens (B, L) long, lengths (B,) long, masked (B, L) bool or None) -> predictions
    (B, L, V) for target 'token', (B, L) for 'l1'. `masked` marks the positions whose input is
    hidden (objective 'masked'); position t's prediction is of token t ('masked') or of token
    t + 1 ('causal'). Padded positions give predictions that no loss may read.
    """

    def __init__(
        self,
        backbone: SequenceClassifier,
        vocab_size: int,
        objective: str,
        masking: str = "token",
        target: str = "token",
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("objective", objective, OBJECTIVES),
            ("masking", masking, MASKINGS),
            ("target", target, TARGETS),
        ):
            if value not in allowed:
                raise ValueError(f"pretrain.{name}={value!r}; choose from {list(allowed)}")
        if objective == "causal" and backbone.pooling == "cls":
            # A causal model's [CLS], prepended first, sees only itself; the stage pools by mean.
            raise ValueError("causal pretraining needs pooling mean or last, not cls")
        self.objective, self.masking, self.target = objective, masking, target
        backbone.head = None  # fine-tuning gets a fresh classifier head; pretraining none
        self.backbone = backbone
        width = backbone.d_model
        self.mask_vector = nn.Parameter(torch.randn(width))  # N(0, 1), as the token embeddings
        self.lm_head = nn.Linear(width, vocab_size if target == "token" else 1)

    def embed(self, tokens: torch.Tensor, masked: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings (B, L, D), masked positions replaced (token) or flagged (pixel)."""
        if masked is None or self.objective == "causal":
            return self.backbone.embed(tokens)
        hidden = masked.unsqueeze(-1)
        if self.masking == "token":
            x = self.backbone.embed(tokens)
            return torch.where(hidden, self.mask_vector.to(x.dtype), x)
        x = self.backbone.embed(tokens.masked_fill(masked, 0))  # the pixel zeroed ...
        return x + hidden.to(x.dtype) * self.mask_vector.to(x.dtype)  # ... and flagged

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, masked: torch.Tensor | None = None
    ) -> torch.Tensor:
        states = self.backbone.hidden_states(self.embed(tokens, masked), lengths)
        predictions = self.lm_head(states)
        return predictions if self.target == "token" else predictions.squeeze(-1)

    def kernel_backends(self) -> dict[str, str]:
        return self.backbone.kernel_backends()


def backbone_weights(pretraining_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The classifier's weights in a pretraining checkpoint's state dict: those under
    `backbone.`, prefix removed (the mask vector and the LM head are left behind)."""
    return {
        name[len(BACKBONE_PREFIX) :]: tensor
        for name, tensor in pretraining_weights.items()
        if name.startswith(BACKBONE_PREFIX)
    }


def load_pretrained_backbone(classifier: SequenceClassifier, best_path: Path) -> list[str]:
    """Loads a pretraining run's best weights (`best.pt`, {'model': state dict}) into
    `classifier`, all but its head, which stays as initialised (fresh). Nothing is frozen.
    Returns the names of the head's parameters (those not loaded). ValueError when the
    checkpoint is not of this architecture (a weight missing, extra or of another shape)."""
    content = torch.load(best_path, map_location="cpu", weights_only=True)
    weights = backbone_weights(content["model"])
    own = classifier.state_dict()
    head = sorted(name for name in own if name.startswith("head."))
    expected = set(own) - set(head)
    missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
    wrong = sorted(
        name for name in expected & set(weights) if weights[name].shape != own[name].shape
    )
    if missing or extra or wrong:
        raise ValueError(
            f"{best_path}: not this model's pretraining (missing {missing[:3]}, extra "
            f"{extra[:3]}, other shapes {wrong[:3]})"
        )
    classifier.load_state_dict({**own, **weights})
    return head
