"""SSD: the reference is the scalar-decay recurrence, the chunked form's segment sums are exact.
(Every backend against the reference: test_backends.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from models.ops.ssd.chunked import segment_sum
from models.ops.ssd.reference import ssd_reference

F64 = torch.float64


def test_segment_sum_known_values():
    log_a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    expected = torch.tensor(
        [
            [0, -math.inf, -math.inf, -math.inf],
            [2, 0, -math.inf, -math.inf],
            [5, 3, 0, -math.inf],
            [9, 7, 4, 0],
        ],
        dtype=F64,
    )
    torch.testing.assert_close(segment_sum(log_a), expected)


def test_ssd_reference_is_the_scalar_decay_recurrence():
    # One head, p = n = 1, two steps by hand: S_1 = a_1 S_0 + x_1 b_1, S_2 = a_2 S_1 + x_2 b_2.
    t = lambda v: torch.tensor(v, dtype=F64).view(1, 2, 1, 1)  # noqa: E731
    x, b, c = t([1.5, -2.0]), t([0.5, 3.0]), t([2.0, -1.0])
    log_a = torch.tensor([[[-0.3], [-1.1]]], dtype=F64)
    y, state = ssd_reference(x, log_a, b, c, torch.full((1, 1, 1, 1), 0.4, dtype=F64))
    s1 = math.exp(-0.3) * 0.4 + 1.5 * 0.5
    s2 = math.exp(-1.1) * s1 - 2.0 * 3.0
    torch.testing.assert_close(y.flatten(), torch.tensor([2.0 * s1, -1.0 * s2], dtype=F64))
    assert state.item() == pytest.approx(s2, rel=1e-14)
