"""The one way code outside the Hydra app (`lra_bench.run`) composes the configs of conf/: the
CLI's commands, the speed worker, benchmarks and tests; and the mixer built from a model config
the way the backbone builds it."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from torch import nn

from lra_bench import REPO_ROOT
from models.backbone import mixer_arguments

CONF_DIR = REPO_ROOT / "conf"


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The config `python -m lra_bench.run OVERRIDES` would run (config_name 'config'), or one
    config file alone (e.g. 'model/mamba': the model's own settings, no task or profile)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def compose_each(
    overrides: Sequence[Sequence[str]], config_name: str = "config"
) -> list[DictConfig]:
    """`compose(o)` for each `o` of `overrides`, in one Hydra initialisation: composing the
    whole zoo (every model x task of a profile) this way skips a set-up per config."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return [hydra_compose(config_name=config_name, overrides=list(o)) for o in overrides]


def option_names(group: str) -> list[str]:
    """The options of a config group, e.g. every model of conf/model/."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def task_class(task: str) -> type:
    """The loader class of conf/task/<task>.yaml: its `vocab_size`, `num_classes`, `pair` are
    the task's token shape, known without reading any data."""
    return get_class(compose(config_name=f"task/{task}").task.data._target_)


def build_mixer(cfg: DictConfig, d_model: int, max_length: int, **overrides) -> nn.Module:
    """The mixer of a composed config at width `d_model` for sequences up to `max_length`,
    given the arguments the backbone would give it; `overrides` replace the config's options."""
    factory = instantiate(cfg.model.backbone.mixer)
    arguments = mixer_arguments(factory, d_model, max_length, layer_index=0, n_layers=1)
    return factory(**{**arguments, **overrides})
