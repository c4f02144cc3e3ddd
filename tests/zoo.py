"""Building any zoo mixer from its Hydra config, for the tests that every mixer must pass."""

from __future__ import annotations

import inspect

from hydra.utils import instantiate
from torch import nn

from lra_bench.compose import build_mixer as compose_build_mixer
from tests.conftest import compose_config, names_in

MODELS = names_in("model")

# Settings scaled to the tests' short sequences (L ~ 24), so that the structure the method learns
# exists at all: Sinkhorn's LRA block of 50 would leave one block and no sorting to learn.
SHORT_SEQUENCE_SETTINGS = {"sinkhorn": {"block_size": 8}}


def build_mixer(model: str, d_model: int = 16, max_length: int = 64, **overrides) -> nn.Module:
    """The mixer of conf/model/<model>.yaml at a small width (its own defaults otherwise, but
    SHORT_SEQUENCE_SETTINGS)."""
    cfg = compose_config([f"model={model}", "profile=smoke"])
    options = {**SHORT_SEQUENCE_SETTINGS.get(model, {}), **overrides}
    return compose_build_mixer(cfg, d_model, max_length, **options)


def accepts(model: str, name: str) -> bool:
    cfg = compose_config([f"model={model}", "profile=smoke"])
    return name in inspect.signature(instantiate(cfg.model.backbone.mixer)).parameters
