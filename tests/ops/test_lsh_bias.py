"""Reformer's LSH-attention bias (models/ops/lsh_bias): the compiled form equals the PyTorch
form bit for bit (test_backends.py compares them by relative error like every op), and the
bias means what the Reformer needs: MASKED outside the query's bucket, the self penalty on the
diagonal, -log N_ij from a count taken here by brute force over positions."""

from __future__ import annotations

import math

import pytest
import torch

from models.ops.attention.blocked import MASKED
from models.ops.lsh_bias import lsh_bias
from models.ops.lsh_bias.reference import SELF_PENALTY
from tests.ops.cases import CASES
from tests.ops.compiled import compiled_kernel

MASKED_32 = torch.tensor(MASKED, dtype=torch.float32).item()  # the bias is float32


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("lsh_bias_cpu", "lsh_bias")


@pytest.mark.parametrize("case", sorted(CASES["lsh_bias"]))
@pytest.mark.parametrize("length", [8, 40, 100])
def test_compiled_equals_reference_exactly(kernel, case, length):
    args, _ = CASES["lsh_bias"][case](length, torch.float32, torch.Generator().manual_seed(length))
    assert torch.equal(lsh_bias(*args, backend="cpu"), lsh_bias(*args, backend="reference"))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_each_pair_by_brute_force(backend):
    """Every (round, query, key slot) against its definition, from positions and buckets."""
    g = torch.Generator().manual_seed(0)
    buckets, order, n_buckets, chunk, causal = CASES["lsh_bias"]["two_rounds"](
        24, torch.float32, g
    )[0]
    bias = lsh_bias(buckets, order, n_buckets, chunk, causal, backend=backend)
    rounds, length = order.shape[2], order.shape[3]
    chunk_of = order.argsort(-1) // chunk
    for b, h in [(0, 0), (1, 1), (2, 0)]:
        for r in range(rounds):
            for c in range(length // chunk):
                for w in range(chunk):
                    q = order[b, h, r, c * chunk + w].item()
                    for slot in range(2 * chunk):
                        key_chunk = c - 1 + slot // chunk
                        got = bias[b, h, r, c, w, slot].item()
                        if key_chunk < 0:
                            assert got == MASKED_32
                            continue
                        k = order[b, h, r, key_chunk * chunk + slot % chunk].item()
                        same = buckets[b, h, r, q] == buckets[b, h, r, k]
                        if not same or buckets[b, h, r, k] == n_buckets:
                            assert got == MASKED_32
                        elif k == q:
                            assert got == pytest.approx(-SELF_PENALTY - math.log(rounds))
                        else:
                            shared = sum(
                                bool(buckets[b, h, o, q] == buckets[b, h, o, k])
                                and 0 <= chunk_of[b, h, o, q] - chunk_of[b, h, o, k] <= 1
                                for o in range(rounds)
                            )
                            assert shared >= 1
                            assert got == pytest.approx(-math.log(shared), abs=1e-7)
