"""Self-pretraining (SPT, Amos, Berant & Gupta, ICLR 2024; LRA_SPEC 5.8) as a stage of a run: what
it is allowed to be, what identifies it, where it lives, and what a supervised run takes from it
(the stage itself is lra_bench/stages.py `PretrainingStage`).

A run with `pretrain=masked` or `pretrain=causal` has two stages, each a run of its own with its
own directory, record, checkpoints and resume:

    results/runs/<task>/<model>/<profile>/pretrain-<objective>-seed<s>-<hash>/   pretraining
    results/runs/<task>/<model>/<profile>/seed<n>-<hash>/                        fine-tuning

The pretraining run is identified by the task (its data settings included), the model (its
causal flag included), the profile and the `pretrain` node with its own seed; not by the
fine-tuning trainer or the run's seed. So the supervised runs of a sweep over seeds or learning
rates find one pretraining run and share it (lra_bench/run.py trains it once, under a lock the
other jobs wait on). The fine-tuning record names it in `pretrained_from`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from lra_bench.identity import identifying_config
from lra_bench.records import SCRATCH, RunRecord
from models.pretraining import MASKINGS, TARGETS, load_pretrained_backbone

NONE = "none"
OBJECTIVES = (NONE, "masked", "causal")
# What a pretraining run's identity covers: everything it computes from, nothing of the
# supervised stage (its `trainer`, the run's seed).
IDENTITY_KEYS = ("task", "model", "profile", "pretrain")
DIRECTORY_PREFIX = "pretrain-"


def objective_of(cfg: DictConfig) -> str:
    """'none', 'masked' or 'causal'."""
    return str(OmegaConf.select(cfg, "pretrain.objective", default=NONE))


def requested(cfg: DictConfig) -> bool:
    return objective_of(cfg) != NONE


def protocol_of(cfg: DictConfig) -> str:
    """The leaderboard protocol of the supervised run: scratch, spt-masked or spt-causal."""
    return SCRATCH if not requested(cfg) else f"spt-{objective_of(cfg)}"


def pretraining_seed(cfg: DictConfig) -> int:
    """pretrain.seed, or the run's seed when it is null."""
    seed = cfg.pretrain.seed
    return int(cfg.seed if seed is None else seed)


def _mixer_takes_causal(cfg: DictConfig) -> bool:
    """Whether the mixer's constructor has a `causal` option (True when the mixer cannot be
    imported: the settings check names that problem itself)."""
    try:
        target = get_object(cfg.model.backbone.mixer._target_)
    except Exception:
        return True
    return "causal" in inspect.signature(target).parameters


def problems(cfg: DictConfig) -> list[str]:
    """Why this run's pretraining settings cannot run (empty when they can, or with none)."""
    objective = objective_of(cfg)
    if objective not in OBJECTIVES:
        return [f"pretrain.objective={objective!r}: choose from {', '.join(OBJECTIVES)}"]
    if objective == NONE:
        return []
    node, model = cfg.pretrain, cfg.model.name
    found = []
    mixer = cfg.model.backbone.mixer
    if not _mixer_takes_causal(cfg):
        if objective == "causal":
            found.append(
                f"pretrain=causal: model {model}'s mixer ({mixer._target_}) has no causal form, "
                "and next-element prediction needs one; use pretrain=masked"
            )
    elif objective == "masked" and bool(OmegaConf.select(mixer, "causal", default=False)):
        found.append(
            f"pretrain=masked: model {model} is configured causal "
            "(model.backbone.mixer.causal=true), and masked modelling needs a bidirectional "
            "model; use pretrain=causal"
        )
    if objective == "causal" and cfg.model.backbone.pooling == "cls":
        found.append(
            "pretrain=causal with model.backbone.pooling=cls: a causal model's [CLS] token, "
            "first in the sequence, sees nothing but itself; pool by mean or last"
        )
    ratio = node.ratio
    if objective == "masked" and not (isinstance(ratio, int | float) and 0 < ratio < 1):
        found.append(f"pretrain.ratio={ratio!r}: expected a fraction in (0, 1)")
    if node.masking not in MASKINGS:
        found.append(f"pretrain.masking={node.masking!r}: choose from {', '.join(MASKINGS)}")
    if node.target not in TARGETS:
        found.append(f"pretrain.target={node.target!r}: choose from {', '.join(TARGETS)}")
    if node.seed is not None and not (isinstance(node.seed, int) and node.seed >= 0):
        found.append(f"pretrain.seed={node.seed!r}: expected an integer >= 0, or null")
    return found


# --- identity and place ------------------------------------------------------------------------


def identity(cfg: DictConfig, include_seed: bool = True) -> dict:
    """What identifies the pretraining run of `cfg`, as plain data."""
    config = identifying_config(cfg)
    found = {key: config[key] for key in IDENTITY_KEYS if key in config}
    found["pretrain"] = {
        **found["pretrain"],
        "seed": pretraining_seed(cfg) if include_seed else None,
    }
    return found


def pretraining_hash(cfg: DictConfig, include_seed: bool = True) -> str:
    """12 hex digits of sha256 over the canonical JSON of `identity(cfg)`."""
    canonical = json.dumps(identity(cfg, include_seed), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def pretraining_dir_for(cfg: DictConfig) -> Path:
    """results_dir/runs/<task>/<model>/<profile>/pretrain-<objective>-seed<s>-<hash>."""
    return (
        Path(cfg.results_dir)
        / "runs"
        / str(cfg.task.name)
        / str(cfg.model.name)
        / str(cfg.profile.name)
        / f"{DIRECTORY_PREFIX}{objective_of(cfg)}-seed{pretraining_seed(cfg)}-{pretraining_hash(cfg)}"
    )


# --- the run a supervised run starts from ------------------------------------------------------


@dataclass
class Pretrained:
    """A pretraining run a supervised run starts from: its record and its directory."""

    record: RunRecord
    run_dir: Path

    def reference(self) -> dict:
        """What the fine-tuning record says about it (`pretrained_from`)."""
        return {
            "config_hash": self.record.config_hash,
            "run_dir": str(self.run_dir),
            "status": self.record.status,
            "best_step": self.record.best_step,
            "metric": self.record.metric,
            "value": self.record.best_val_metric,
        }

    def load_into(self, classifier) -> list[str]:
        """Its best weights into `classifier`, all but the head; RuntimeError when the
        pretraining did not finish ok."""
        if self.record.status != "ok":
            raise RuntimeError(
                f"pretraining run {self.run_dir} ended {self.record.status}: {self.record.error}"
            )
        return load_pretrained_backbone(classifier, self.run_dir / "best.pt")

    def summary(self, reused: bool) -> str:
        """One line for the console: what the pretraining did, and whether it was reused."""
        record = self.record
        if record.status != "ok":
            return f"pretraining {record.status}: {record.error} [{self.run_dir}]"
        how = "found finished, reused" if reused else f"trained in {record.wall_seconds:.0f} s"
        return f"pretraining ({how}): {format_reference(self.reference())}"


def format_reference(reference: dict) -> str:
    """A fine-tuning record's `pretrained_from`, in one line."""
    if reference.get("status") != "ok":
        return f"ended {reference.get('status')} [{reference.get('run_dir')}]"
    return (
        f"{reference['metric']} {format_metric(reference['metric'], reference['value'])} on the "
        f"validation inputs, best at step {reference['best_step']} "
        f"(run {reference['config_hash']}, {reference['run_dir']})"
    )


def format_metric(name: str | None, value: float | None) -> str:
    """An accuracy as a percentage, an R^2 as a plain number."""
    if value is None:
        return "-"
    return f"{value:.3f}" if str(name).endswith("r2") else f"{100 * value:.2f}%"
