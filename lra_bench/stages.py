"""The stages a run can have, as the one `execute` of lra_bench/run.py runs them: each says which
seed and identity its record carries, which trainer settings and objective the engine gets,
which model it builds, and what it adds to the record at the end.

    SupervisedStage    classification, from scratch or from a pretraining run's weights
    PretrainingStage   self-pretraining (lra_bench/pretraining.py)
"""

from __future__ import annotations

from typing import Protocol

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lra_bench.engine import TrainerConfig, TrainResult
from lra_bench.identity import config_hash
from lra_bench.objectives import CLASSIFICATION, LanguageModelling, Objective
from lra_bench.pretraining import (
    Pretrained,
    objective_of,
    pretraining_hash,
    pretraining_seed,
    protocol_of,
)
from lra_bench.records import PRETRAIN, TRAIN, RunRecord
from models.pretraining import PretrainingModel
from tasks.base import TaskData


class Stage(Protocol):
    name: str  # records.TRAIN | records.PRETRAIN
    protocol: str
    pretrained_from: dict | None  # the pretraining a supervised run starts from
    seed: int
    config_hash: str
    variant: str
    trainer: TrainerConfig
    objective: Objective

    def build(self, data: TaskData) -> nn.Module: ...

    def finish(
        self,
        record: RunRecord,
        model: nn.Module,
        data: TaskData,
        result: TrainResult,
        device: torch.device,
    ) -> None: ...


def build_model(cfg: DictConfig, data: TaskData, pair: bool | None = None) -> nn.Module:
    """The backbone of `cfg.model`, sized by the task's vocabulary, classes and length; in
    two-tower mode for a pair task (Retrieval) unless `pair` says otherwise. `data` needs only
    those facts, pair mode and `intensities`: the loaded TaskData, or lra_bench.budget.TaskShape
    read from the config alone (how the budget counts a stage's parameters without data). An
    intensity encoder (`model.backbone.encoder=linear`) is refused on a task whose tokens are
    not gray levels."""
    pair = data.pair if pair is None else pair
    encoder = cfg.model.backbone.get("encoder", "embedding")
    if encoder == "linear" and not data.intensities:
        raise ValueError(
            f"model.backbone.encoder=linear reads a token id as a gray level; task {cfg.task.name!r}"
            " has no pixels (use encoder=embedding, or a pixel task: image, pathfinder, pathx)"
        )
    return instantiate(
        cfg.model.backbone,
        vocab_size=data.vocab_size,
        num_classes=data.num_classes,
        max_length=data.max_length,
        **({"pair": True} if pair else {}),
    )


class SupervisedStage:
    """The supervised run: the classifier trained on labels, selected on validation accuracy,
    scored on test. With a pretraining run it starts from that run's best weights, all but the
    head (fresh, from the run's seed); nothing is frozen."""

    name = TRAIN

    def __init__(self, cfg: DictConfig, pretrained: Pretrained | None = None) -> None:
        self.cfg = cfg
        self.pretrained = pretrained
        self.pretrained_from = pretrained.reference() if pretrained is not None else None
        self.protocol = protocol_of(cfg)
        self.seed = int(cfg.seed)
        self.config_hash = config_hash(cfg)
        self.variant = config_hash(cfg, include_seed=False)
        self.trainer = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
        self.objective = CLASSIFICATION

    def build(self, data: TaskData) -> nn.Module:
        model = build_model(self.cfg, data)
        if self.pretrained is not None:
            self.pretrained.load_into(model)
        return model

    def finish(self, record, model, data, result, device) -> None:
        record.best_val_accuracy = result.best_val_accuracy
        record.val_accuracy = result.val_accuracy
        record.test_accuracy = result.test_accuracy


class PretrainingStage:
    """Self-pretraining on the training split's inputs (never its labels), selected on the
    validation inputs; its own seed and identity (lra_bench/pretraining.py)."""

    name = PRETRAIN
    pretrained_from = None

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.protocol = protocol_of(cfg)
        self.seed = pretraining_seed(cfg)
        self.config_hash = pretraining_hash(cfg)
        self.variant = pretraining_hash(cfg, include_seed=False)
        node = cfg.pretrain
        self.trainer = TrainerConfig(**OmegaConf.to_container(node.trainer, resolve=True))
        self.objective = LanguageModelling(objective_of(cfg), node.target, float(node.ratio))

    def build(self, data: TaskData) -> PretrainingModel:
        """The run's backbone inside the pretraining wrapper, for single sequences: Retrieval's
        documents are pretrained one by one, and the two-tower head exists in fine-tuning only."""
        node = self.cfg.pretrain
        backbone = build_model(self.cfg, data, pair=False)
        return PretrainingModel(
            backbone, data.vocab_size, objective_of(self.cfg), node.masking, node.target
        )

    def finish(self, record, model, data, result, device) -> None:
        """The pretraining's figures: its metric's best value, and every validation figure on
        the best checkpoint (which the engine left in `model`)."""
        record.metric = self.objective.metric
        record.best_val_metric = result.best_val_accuracy
        model.eval()
        with torch.no_grad():
            record.val_metrics = self.objective.measure(
                model, data.splits["val"], self.trainer.eval_batch_size, device
            )
