"""The selective scan: the reference is the discretised SSM, the chunked form passes gradcheck
through its recomputing backward and keeps only chunk inputs for it. (Every backend against the
reference: test_backends.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from models.ops.selective_scan import selective_scan
from models.ops.selective_scan.reference import selective_scan_reference

F64 = torch.float64
TIGHT = {"rtol": 1e-9, "atol": 1e-11}


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=F64) * scale).requires_grad_()


def test_selective_scan_recomputing_backward_passes_gradcheck():
    u, B, C, h0 = randn(2, 7, 3), randn(2, 7, 2), randn(2, 7, 2), randn(2, 3, 2)
    delta = torch.rand(2, 7, 3, dtype=F64).requires_grad_()
    A = (-torch.rand(3, 2, dtype=F64)).requires_grad_()

    def scan(u, delta, A, B, C, h0):
        return selective_scan(u, delta, A, B, C, initial_state=h0, chunk_size=3, backend="chunked")

    assert torch.autograd.gradcheck(scan, (u, delta, A, B, C, h0))


def test_selective_scan_reference_is_the_discretised_ssm():
    # One channel, one state: h_1 = exp(dt a) h0 + dt b u, y_1 = c h_1 + D u, by hand.
    h0, u, dt, a, b, c, skip = 0.7, 2.0, 0.3, -1.5, 0.4, -0.9, 0.25
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    y, h = selective_scan_reference(
        t([[[u]]]), t([[[dt]]]), t([[a]]), t([[[b]]]), t([[[c]]]), t([skip]), t([[[h0]]])
    )
    expected_h = math.exp(dt * a) * h0 + dt * b * u
    assert h.item() == pytest.approx(expected_h, rel=1e-14)
    assert y.item() == pytest.approx(c * expected_h + skip * u, rel=1e-14)


def test_selective_scan_keeps_only_chunk_inputs_for_backward():
    # Memory stays bounded: what autograd keeps is O(B L (D + N)) inputs and chunk-boundary
    # states, not the O(B L D N) per-step states (those are rebuilt in backward).
    b, length, d, n = 2, 64, 8, 16
    u, B, C = randn(b, length, d), randn(b, length, n), randn(b, length, n)
    delta = torch.rand(b, length, d, dtype=F64).requires_grad_()
    A = (-torch.rand(d, n, dtype=F64)).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        selective_scan(u, delta, A, B, C, chunk_size=16, backend="chunked")
    assert sum(saved) < b * length * d * n
