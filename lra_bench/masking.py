"""Self-pretraining batches: a split's inputs only (never its labels), each document its own
sequence, and for masked modelling the positions to hide.

Training batch `index` (one micro-batch) takes the rows `TrainBatches` would take at that index
and draws its mask from a generator seeded by (seed, index): a pure function of the pretraining
seed and the step, so a resumed run hides exactly the positions an uninterrupted one would.
Validation masks are drawn the same way from a fixed seed, so that every evaluation of every
pretraining run scores the same hidden positions.

Masking is i.i.d. Bernoulli(ratio) over the real positions (no 80/10/10 replacement, no spans:
the SPT paper's default); padding is never hidden, so never a target.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lra_bench.batches import TrainBatches, take_inputs
from tasks.base import Split

# tokens (B, L) long, lengths (B,) long, masked (B, L) bool (None for next-element prediction).
PretrainBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
TRAIN_STREAM, VALIDATION_STREAM = 1, 2  # keep mask draws apart from the batch order's
VALIDATION_MASK_SEED = 0


def separate_documents(tokens: torch.Tensor, lengths: torch.Tensor):
    """A pair task's examples as separate sequences: tokens (B, 2, L) -> (2B, L), lengths
    (B, 2) -> (2B,); single sequences unchanged. Retrieval's documents are pretrained one by one,
    as in the SPT paper (the two-tower head exists in fine-tuning only)."""
    if tokens.ndim == 3:
        return tokens.flatten(0, 1), lengths.flatten()
    return tokens, lengths


def draw_mask(lengths: torch.Tensor, width: int, ratio: float, rng: np.random.Generator):
    """(B, width) bool: each real position (< its row's length) hidden with probability
    `ratio`, independently; padded positions never."""
    real = torch.arange(width)[None, :] < lengths[:, None]
    hidden = torch.from_numpy(rng.random((len(lengths), width)) < ratio)
    return hidden & real


class PretrainBatches:
    """Training batches of self-pretraining: `batch(index)` -> (tokens, lengths, masked), a
    pure function of (seed, index). batch_size counts examples, as in fine-tuning, so that a
    Retrieval step sees 2 x batch_size documents (the sequences a fine-tuning step encodes).
    ratio: the fraction of positions to hide; None for next-element prediction (no mask)."""

    def __init__(self, split: Split, batch_size: int, seed: int, ratio: float | None) -> None:
        self.order = TrainBatches(split, batch_size, seed)
        self.split, self.seed, self.ratio = split, seed, ratio

    def batch(self, index: int, part: int = 0, parts: int = 1) -> PretrainBatch:
        """Batch `index`, or share `part` of `parts` of its sequences (part::parts). The mask
        is drawn for the whole batch first, so that the shares of all ranks together are
        exactly one process's batch."""
        tokens, lengths = separate_documents(*take_inputs(self.split, self.order.rows(index)))
        if self.ratio is None:
            return tokens[part::parts], lengths[part::parts], None
        rng = np.random.default_rng([self.seed, index, TRAIN_STREAM])
        masked = draw_mask(lengths, tokens.shape[1], self.ratio, rng)
        return tokens[part::parts], lengths[part::parts], masked[part::parts]


def validation_batches(split: Split, batch_size: int, ratio: float | None) -> Iterator:
    """Every example of `split` once, in order, as (tokens, lengths, masked) like
    `PretrainBatches`; the mask of the block starting at row r is drawn from
    (VALIDATION_MASK_SEED, r), the same in every evaluation."""
    for start in range(0, len(split), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split)))
        tokens, lengths = separate_documents(*take_inputs(split, rows))
        if ratio is None:
            yield tokens, lengths, None
            continue
        rng = np.random.default_rng([VALIDATION_MASK_SEED, start, VALIDATION_STREAM])
        yield tokens, lengths, draw_mask(lengths, tokens.shape[1], ratio, rng)
