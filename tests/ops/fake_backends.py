"""Backends for tests/ops/test_dispatch.py: one that works, one that fails to "compile"."""

import torch


def double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def double_slowly(x: torch.Tensor, chunk_size: int = 1) -> torch.Tensor:
    return sum((x for _ in range(2)), torch.zeros_like(x))


def broken(x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("PTX assembly failed")


def cannot_build(x: torch.Tensor) -> torch.Tensor:
    from models.ops.dispatch import BackendUnavailable

    raise BackendUnavailable("no C++ compiler found (gcc)")
