"""The compiled CPU kernel a test module needs: built once (or loaded from the cache), the
module's tests skipped only where nothing can build here (no compiler or no ninja)."""

from __future__ import annotations

import importlib

import pytest

from models.ops import cpu_build


def compiled_kernel(stem: str, op: str) -> cpu_build.LoadedKernel:
    """The kernel `stem` built from models/ops/<op>/cpu.py's SOURCE, or pytest.skip with why."""
    problem = cpu_build.build_problem()
    if problem is not None:
        pytest.skip(problem)
    source = importlib.import_module(f"models.ops.{op}.cpu").SOURCE
    return cpu_build.load_kernel(stem, source)
