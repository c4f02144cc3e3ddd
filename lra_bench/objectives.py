"""What the training loop optimises and selects on: an objective gives the loop its batches, the
loss of one batch and the validation score (higher is better) that picks the best checkpoint.

    Classification      labels from tokens: the supervised run (from scratch or fine-tuning)
    LanguageModelling   self-pretraining on the inputs alone (LRA_SPEC 5.8): masked modelling
                        or next-element prediction, with a V-way or an L1 target

The loop (lra_bench/engine.py) is the same for all; it runs `loss` and `score` under its
autocast and `score` in eval mode without gradients. Under several processes (a `World` of
lra_bench/distributed.py) each rank's batches are its share of the global batch, and the
classification score is summed over the ranks' shares of the split.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lra_bench.batches import TrainBatches, eval_batch_count, eval_batches
from lra_bench.distributed import World
from lra_bench.masking import PretrainBatches, validation_batches
from models.pretraining import PIXEL_LEVELS
from tasks.base import Split


class BatchSource(Protocol):
    def batch(self, index: int, part: int = 0, parts: int = 1) -> tuple: ...


class Objective(Protocol):
    """metric: the validation score's name ('accuracy', 'masked_accuracy', ...), recorded in
    the history as `val_<metric>`. reports_test: whether the best checkpoint is also scored on
    the test split (never for pretraining, which has no use for the test inputs)."""

    metric: str
    reports_test: bool

    def train_batches(self, split: Split, batch_size: int, seed: int) -> BatchSource: ...

    def loss(self, model: nn.Module, batch: tuple, device: torch.device) -> torch.Tensor: ...

    def score(
        self,
        model: nn.Module,
        split: Split,
        batch_size: int,
        device,
        world: World | None = None,
        progress: str | None = None,
    ) -> float: ...


def progress_bar(batches: Iterable, total: int, progress: str | None, world: World) -> Iterable:
    """`batches` behind an evaluation bar named `progress` on rank 0 (none when None)."""
    return tqdm(
        batches,
        total=total,
        desc=progress,
        unit="batch",
        leave=False,
        disable=progress is None or not world.is_main,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def classification_loss(model: nn.Module, batch: tuple, device: torch.device) -> torch.Tensor:
    """Mean cross-entropy of model(tokens, lengths) against the labels of (tokens (B, L) or
    (B, 2, L), lengths, labels (B,))."""
    tokens, lengths, labels = batch
    logits = model(tokens.to(device), lengths.to(device))
    return F.cross_entropy(logits.float(), labels.to(device))


class Classification:
    """The supervised objective: cross-entropy on labels, accuracy on validation."""

    metric = "accuracy"
    reports_test = True

    def train_batches(self, split: Split, batch_size: int, seed: int) -> TrainBatches:
        return TrainBatches(split, batch_size, seed)

    def loss(self, model: nn.Module, batch: tuple, device: torch.device) -> torch.Tensor:
        return classification_loss(model, batch, device)

    def score(
        self,
        model: nn.Module,
        split: Split,
        batch_size: int,
        device,
        world: World | None = None,
        progress: str | None = None,
    ) -> float:
        """Accuracy of `model` on every example of `split`; with several ranks each takes its
        share of the rows and the counts are summed."""
        world = world or World()
        batches = progress_bar(
            eval_batches(split, batch_size, world.rank, world.size),
            eval_batch_count(split, batch_size, world.rank, world.size),
            progress,
            world,
        )
        correct = 0
        for tokens, lengths, labels in batches:
            logits = model(tokens.to(device), lengths.to(device))
            correct += (logits.argmax(-1).cpu() == labels).sum().item()
        (correct,) = world.total(correct)
        return correct / max(1, len(split))


CLASSIFICATION = Classification()


def lm_targets(
    tokens: torch.Tensor, lengths: torch.Tensor, masked: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets (B, L) long, scored (B, L) bool) of a pretraining batch. Masked modelling:
    the hidden tokens, at the hidden positions. Next-element prediction (masked None): token
    t + 1 at position t, for every real position but the last (padding is never a target)."""
    if masked is not None:
        return tokens, masked
    targets = torch.nn.functional.pad(tokens[:, 1:], (0, 1))
    scored = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None] - 1
    return targets, scored


@dataclass
class LanguageModelling:
    """Self-pretraining on a split's inputs. objective: 'masked' | 'causal'. target: 'token'
    (cross-entropy over the vocabulary: the 256 gray levels for pixels) | 'l1' (|prediction -
    value / 255|). ratio: the fraction of positions hidden ('masked' only).

    The loss of a batch is the mean over its scored positions only (hidden ones, or each real
    position's next), 0 when a batch happens to have none; no other position contributes
    (tests/test_pretraining.py checks the gradient). The validation score: accuracy over the
    scored positions for 'token', R^2 of the predictions for 'l1'."""

    objective: str
    target: str = "token"
    ratio: float | None = None

    @property
    def metric(self) -> str:
        where = "masked" if self.objective == "masked" else "next"
        return f"{where}_{'accuracy' if self.target == 'token' else 'r2'}"

    reports_test = False

    def _ratio(self) -> float | None:
        return self.ratio if self.objective == "masked" else None

    def train_batches(self, split: Split, batch_size: int, seed: int) -> PretrainBatches:
        return PretrainBatches(split, batch_size, seed, self._ratio())

    def _predict(self, model: nn.Module, batch: tuple, device: torch.device):
        """(predictions at the scored positions, their targets), both on `device`: (n, V) and
        (n,) long for 'token', (n,) and (n,) float for 'l1'."""
        tokens, lengths, masked = (t.to(device) if t is not None else None for t in batch)
        predictions = model(tokens, lengths, masked)
        targets, scored = lm_targets(tokens, lengths, masked)
        if self.target == "token":
            return predictions[scored].float(), targets[scored]
        return predictions[scored].float(), targets[scored].float() / PIXEL_LEVELS

    def loss(self, model: nn.Module, batch: tuple, device: torch.device) -> torch.Tensor:
        predictions, targets = self._predict(model, batch, device)
        if self.target == "token":
            total = F.cross_entropy(predictions, targets, reduction="sum")
        else:
            total = F.l1_loss(predictions, targets, reduction="sum")
        return total / max(1, len(targets))

    def measure(
        self,
        model: nn.Module,
        split: Split,
        batch_size: int,
        device,
        world: World | None = None,
        progress: str | None = None,
    ) -> dict:
        """Every validation figure over the scored positions of `split`: positions; for
        'token' accuracy and loss (mean cross-entropy); for 'l1' l1 (mean |error|) and r2.
        Every rank scores the whole split (its masks are drawn per block of rows, so a share
        would change them): the same figures on every rank, at the cost of repeated work."""
        world = world or World()
        count, correct, loss, l1 = 0, 0, 0.0, 0.0
        sum_y = sum_y2 = sum_err2 = 0.0
        batches = progress_bar(
            validation_batches(split, batch_size, self._ratio()),
            eval_batch_count(split, batch_size),
            progress,
            world,
        )
        for batch in batches:
            predictions, targets = self._predict(model, batch, device)
            count += len(targets)
            if self.target == "token":
                correct += (predictions.argmax(-1) == targets).sum().item()
                loss += F.cross_entropy(predictions, targets, reduction="sum").item()
            else:
                error = predictions - targets
                l1 += error.abs().sum().item()
                sum_err2 += error.double().square().sum().item()
                sum_y += targets.double().sum().item()
                sum_y2 += targets.double().square().sum().item()
        n = max(1, count)
        if self.target == "token":
            return {"positions": count, "accuracy": correct / n, "loss": loss / n}
        total = sum_y2 - sum_y * sum_y / n  # sum of squares about the targets' mean
        r2 = 1.0 - sum_err2 / total if total > 0 else float("nan")
        return {"positions": count, "l1": l1 / n, "r2": r2}

    def score(
        self,
        model: nn.Module,
        split: Split,
        batch_size: int,
        device,
        world: World | None = None,
        progress: str | None = None,
    ) -> float:
        figures = self.measure(model, split, batch_size, device, world, progress)
        return figures["accuracy" if self.target == "token" else "r2"]
