"""The additive bias of Reformer's chunked LSH attention (models/mixers/reformer.py): for every
scored pair of a round (a query of a sorted chunk, a key of that chunk or the one before) one
float that holds everything about the pair but its score: MASKED where the key is not in the
query's bucket (or is padding, or is missing, or, causal, lies in the future), the self penalty
where the key is the query itself, and -log N_ij otherwise, N_ij = in how many rounds j is in
i's set (the paper's multi-round normalisation).

Backends: `reference` (PyTorch, ~18 passes over the (B, H, R, N, W, 2W) pairs, of which ~2% are
allowed at ListOps `mini`), `cpu` (one compiled pass, built on first use; passed over with one
line where it cannot be built). No gradient: the bias depends on bucket and position indices only.
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "lsh_bias",
    [
        Backend("reference", "models.ops.lsh_bias.reference:lsh_bias_reference"),
        compiled_cpu_backend("models.ops.lsh_bias.cpu:lsh_bias_cpu"),
    ],
    auto={"cuda": ("reference",), "cpu": ("cpu", "reference")},
)


def lsh_bias(
    buckets: torch.Tensor,
    order: torch.Tensor,
    n_buckets: int,
    chunk_size: int,
    causal: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """buckets: (B, H, R, L) int64, each position's bucket per round (n_buckets = padding).
    order: (B, H, R, L) int64, the positions of each round sorted by (bucket, position).
    n_buckets: real buckets per round.  chunk_size: W, with L a multiple of it.  causal: mask
    keys after the query.  backend: None = the run's kernel settings.
    Returns the bias (B, H, R, N, W, 2W) float32, N = L / W: query w of sorted chunk c against
    the keys of chunk c - 1 (the first W slots; none before chunk 0) and of chunk c."""
    return OP(buckets, order, n_buckets, chunk_size, causal, backend=backend)
