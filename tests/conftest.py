"""Shared test helpers: composing the Hydra config as `python -m lra_bench.run` would."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch

# Triton kernels run in its interpreter on CPU tensors; the variable must be set before Triton is
# first imported, which nothing does before this file.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# The training runner's main() keeps freed memory in glibc's heap (lra_bench/allocator.py), a
# process-wide setting: called in-process by tests it would change this process's allocator, and
# the peak-memory tests here measure what glibc returns. The runs tests start in subprocesses
# inherit the default too, so records compare equal across processes; test_allocator.py asks
# for the setting explicitly.
os.environ["LRA_MALLOC"] = "default"
from omegaconf import DictConfig

from lra_bench.compose import CONF_DIR, compose, compose_each, option_names  # noqa: F401

# The tests use tiny shapes, where a second thread only adds synchronisation (and on a loaded
# 2-core machine, long waits for it); one thread also keeps results bit-for-bit repeatable.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
names_in = option_names  # option names of a config group (e.g. every model in conf/model/)


def compose_config(overrides: list[str]) -> DictConfig:
    return compose(overrides)


@functools.cache
def composed_zoo(profile: str) -> dict[tuple[str, str], DictConfig]:
    """(task, model) -> the composed config, for every task x model of `profile`: composed once
    per test session, in one Hydra set-up (composing is most of what the zoo's tests cost)."""
    pairs = [(task, model) for task in names_in("task") for model in names_in("model")]
    configs = compose_each([[f"task={t}", f"model={m}", f"profile={profile}"] for t, m in pairs])
    return dict(zip(pairs, configs, strict=True))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
