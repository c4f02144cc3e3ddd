"""Shared test helpers: composing the Hydra config as `python -m lra_bench.run` would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton kernels run in its interpreter on CPU tensors; the variable must be set before Triton is
# first imported, which nothing does before this file.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

# The tests use tiny shapes, where a second thread only adds synchronisation (and on a loaded
# 2-core machine, long waits for it); one thread also keeps results bit-for-bit repeatable.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"


def names_in(group: str) -> list[str]:
    """Option names of a config group (e.g. every model in conf/model/)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
