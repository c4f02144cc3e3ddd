"""Reformer's LSH-attention bias (reference.py) as a compiled CPU kernel
(csrc/lsh_bias_cpu.cpp): every scored pair written once, parallel over batch rows x heads with
at::parallel_for. Built on first use and cached (models/ops/cpu_build.py); where it cannot be
built, BackendUnavailable says why and the op runs its `reference` form."""

from __future__ import annotations

from pathlib import Path

import torch

from models.ops.cpu_build import call, load_kernel

SOURCE = Path(__file__).resolve().parent / "csrc" / "lsh_bias_cpu.cpp"


def kernel():
    """The built kernel's library (ctypes); builds it on first use, else BackendUnavailable."""
    return load_kernel("lsh_bias_cpu", SOURCE).library


def lsh_bias_cpu(
    buckets: torch.Tensor, order: torch.Tensor, n_buckets: int, chunk_size: int, causal: bool
) -> torch.Tensor:
    """Arguments and result as models.ops.lsh_bias.lsh_bias. Raises BackendUnavailable when
    the kernel cannot be built here."""
    kernel()  # builds, or says why it cannot, before any tensor work
    if buckets.dim() != 4 or tuple(buckets.shape) != tuple(order.shape):
        raise ValueError(
            f"lsh_bias: buckets and order (B, H, R, L), got {tuple(buckets.shape)}, "
            f"{tuple(order.shape)}"
        )
    batch, heads, rounds, length = order.shape
    if chunk_size < 1 or length % chunk_size:
        raise ValueError(f"lsh_bias: length {length} is not a multiple of chunk_size {chunk_size}")
    if any(t.device.type != "cpu" for t in (buckets, order)):
        raise ValueError("lsh_bias_cpu takes CPU tensors")
    n_chunks = length // chunk_size
    bias = torch.empty(
        batch, heads, rounds, n_chunks, chunk_size, 2 * chunk_size, dtype=torch.float32
    )
    call(
        kernel(),
        "lsh_bias",
        [bias, buckets.long().contiguous(), order.long().contiguous()],
        [batch, heads, rounds, length, chunk_size, n_buckets, int(causal)],
    )
    return bias
