"""The parameter budget of a composed config: how many parameters its model has on its task,
known without data or memory, and how that compares with the Transformer's on the same task and
profile (LRA allowed a model at most 10% more parameters than its Transformer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lra_bench.compose import compose_each
from lra_bench.records import PRETRAIN, TRAIN
from lra_bench.stages import PretrainingStage, SupervisedStage

# LRA's allowance: at most 10% more parameters than the Transformer's.
BUDGET_RATIO = 1.10
REFERENCE_MODEL = "transformer"


@dataclass(frozen=True)
class TaskShape:
    """What the backbone takes from the task: token vocabulary (padding included), classes,
    tokens per sequence (per document for a pair task), pair mode (two documents) and whether
    a token is a gray level (intensities)."""

    vocab_size: int
    num_classes: int
    max_length: int
    pair: bool
    intensities: bool = False


def task_shape(cfg: DictConfig) -> TaskShape:
    """The shape of `cfg.task` as its loader sees it, read from the loader object alone: the
    constructors only store their settings, so no data set is touched."""
    loader = instantiate(cfg.task.data)
    return TaskShape(
        loader.vocab_size, loader.num_classes, loader.max_length, loader.pair, loader.intensities
    )


def build_stage_model(cfg: DictConfig, stage: str = TRAIN, device: str | torch.device = "meta"):
    """The model that stage `stage` of `cfg`'s run trains, built by that stage itself
    (lra_bench.stages) from the task's shape: the classifier for 'train' (two-tower for a pair
    task), the pretraining wrapper (no classifier head; mask vector and prediction head) for
    'pretrain'. On 'meta' no weights are allocated, so a Path-X model with an L x L parameter
    costs nothing."""
    stages = {TRAIN: SupervisedStage, PRETRAIN: PretrainingStage}
    if stage not in stages:
        raise ValueError(f"stage={stage!r}; choose from {list(stages)}")
    with torch.device(device):
        return stages[stage](cfg).build(task_shape(cfg))


def parameter_count(cfg: DictConfig | dict, stage: str = TRAIN) -> int:
    """Parameters of the model a config trains in `stage` ('train' | 'pretrain'): a composed
    config (`lra_bench.compose.compose([...])`) or a run record's resolved `config` dict (with
    the record's `stage`). Every parameter counted once, as the run record's `parameters`
    counts them. The model is built on the meta device, so nothing is allocated and no data is
    read. LRA's budget is the classifier's: the 'train' count."""
    if isinstance(cfg, dict):
        cfg = OmegaConf.create(cfg)
    return sum(p.numel() for p in build_stage_model(cfg, stage).parameters())


def over_budget(parameters: int, reference: int) -> bool:
    """Whether `parameters` exceed LRA's allowance: more than 10% above the reference's."""
    return parameters > BUDGET_RATIO * reference


@dataclass(frozen=True)
class BudgetRow:
    """One (task, model) of a profile: its parameters, and their ratio to the Transformer's on
    the same task and profile."""

    task: str
    model: str
    parameters: int
    reference: int

    @property
    def ratio(self) -> float:
        return self.parameters / self.reference

    @property
    def over(self) -> bool:
        return over_budget(self.parameters, self.reference)


def budget_table(profile: str, tasks: Sequence[str], models: Sequence[str]) -> list[BudgetRow]:
    """A BudgetRow for every task x model of `profile`, each against the Transformer's count on
    its task (composed once per task, whether or not `models` lists it)."""
    names = [REFERENCE_MODEL, *(m for m in models if m != REFERENCE_MODEL)]
    pairs = [(task, model) for task in tasks for model in names]
    configs = compose_each([[f"task={t}", f"model={m}", f"profile={profile}"] for t, m in pairs])
    counts = {pair: parameter_count(cfg) for pair, cfg in zip(pairs, configs, strict=True)}
    return [
        BudgetRow(task, model, counts[task, model], counts[task, REFERENCE_MODEL])
        for task in tasks
        for model in models
    ]


def format_budget(rows: Sequence[BudgetRow]) -> list[str]:
    """The table's lines: task, model, parameters, ratio to the Transformer, and OVER where LRA's
    10% allowance is exceeded."""
    lines = [f"{'task':<11} {'model':<20} {'parameters':>12} {'ratio':>7}"]
    for row in rows:
        flag = f"  OVER (> {BUDGET_RATIO:.2f})" if row.over else ""
        lines.append(
            f"{row.task:<11} {row.model:<20} {row.parameters:>12,} {row.ratio:>7.2f}{flag}"
        )
    over = sum(row.over for row in rows)
    lines.append(f"{over} of {len(rows)} over LRA's budget (Transformer's parameters x 1.10)")
    return lines
