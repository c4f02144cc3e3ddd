"""Batches drawn from a task's arrays.

Training batches are a pure function of (seed, step): epoch e is a permutation seeded by
(seed, e), and step s takes the next `batch_size` rows of it (the last partial batch of an
epoch is dropped, as LRA does). A run resumed at step s therefore sees exactly the batches an
uninterrupted run would have seen. Each batch is cut to its longest row, which is exact because
the models ignore padding, and saves most of the compute on variable-length tasks.

Several processes training one run (lra_bench/distributed.py) split each batch: process `part`
of `parts` takes rows part, part + parts, ... of it, so together they see exactly the batch one
process would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from tasks.base import Split

# tokens (B, L), lengths (B,), labels (B,); for a pair task tokens (B, 2, L), lengths (B, 2).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def take_inputs(split: Split, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of rows of a split, (tokens, lengths), cut to the longest row (or document)
    among them; the labels are not read (self-pretraining never sees them)."""
    lengths = np.asarray(split.lengths[rows])
    width = int(lengths.max())
    tokens = np.asarray(split.tokens[rows, ..., :width])
    return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(lengths.astype(np.int64))


def take(split: Split, rows: np.ndarray) -> Batch:
    """Rows of a split as tensors, cut to the longest row (or document) among them."""
    tokens, lengths = take_inputs(split, rows)
    return tokens, lengths, torch.from_numpy(np.asarray(split.labels[rows]).astype(np.int64))


class TrainBatches:
    """Shuffled training batches; `batch(step)` is deterministic given the seed."""

    def __init__(self, split: Split, batch_size: int, seed: int) -> None:
        if len(split) < batch_size:
            raise ValueError(
                f"training split has {len(split)} examples, fewer than one batch of {batch_size}"
            )
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(split) // batch_size
        self._epoch = -1
        self._order: np.ndarray | None = None

    def rows(self, step: int, part: int = 0, parts: int = 1) -> np.ndarray:
        """The sorted row indices of batch `step` (sorted: faster memmap reads), or of share
        `part` of `parts` of it (rows part::parts)."""
        epoch, within = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.split))
            self._epoch = epoch
        start = within * self.batch_size
        return np.sort(self._order[start : start + self.batch_size])[part::parts]

    def batch(self, step: int, part: int = 0, parts: int = 1) -> Batch:
        """The batch of `step`, or share `part` of `parts` of it (rows part::parts)."""
        return take(self.split, self.rows(step, part, parts))


def eval_batches(split: Split, batch_size: int, part: int = 0, parts: int = 1) -> Iterator[Batch]:
    """Every row of the split once, in order (the last batch may be smaller); or share `part`
    of `parts` of them (rows part::parts), batches of up to `batch_size` of those."""
    rows = np.arange(part, len(split), parts)
    for start in range(0, len(rows), batch_size):
        yield take(split, rows[start : start + batch_size])


def eval_batch_count(split: Split, batch_size: int, part: int = 0, parts: int = 1) -> int:
    """How many batches `eval_batches` yields (for a progress bar)."""
    return -(-len(range(part, len(split), parts)) // batch_size)
