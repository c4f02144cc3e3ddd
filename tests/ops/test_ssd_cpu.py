"""The compiled CPU SSD (models/ops/ssd/cpu.py) beyond the shared backend tests
(test_backends.py): heads split over threads (partial grad_B / grad_C per part of a group),
several row blocks of the state, inputs without gradients or initial state, low precision
inputs, what it keeps for the backward. (Its build and fallback are models/ops/cpu_build.py's,
tested with the selective scan: test_selective_scan_cpu.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.ops.ssd import ssd
from models.ops.ssd.reference import ssd_reference
from tests.ops import compare
from tests.ops.compare import assert_close
from tests.ops.compiled import compiled_kernel

F64 = torch.float64


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("ssd_cpu", "ssd")


def ssd_inputs(batch, length, heads, width, groups, states, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=F64).to(dtype)

    x = randn(batch, length, heads, width)
    log_a = -F.softplus(randn(batch, length, heads))
    B, C = randn(batch, length, groups, states), randn(batch, length, groups, states)
    h0 = randn(batch, heads, width, states)
    return [x, log_a, B, C, h0]


def outputs_and_grads(backend, inputs, wanted, **options):
    return compare.outputs_and_grads(ssd, backend, inputs, wanted, **options)


@pytest.mark.parametrize("threads", [1, 2])
def test_parts_threads_and_inputs_without_gradients_match_the_reference(kernel, threads):
    # Batch 3 on 2 threads: each group's 4 heads are split into parts whose partial grad_B and
    # grad_C are added. Width 9: two 4-row blocks of the state and one single row.
    inputs = ssd_inputs(batch=3, length=45, heads=8, width=9, groups=2, states=7)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for wanted in ([True] * 5, [False, True, True, False, False]):
            expected = outputs_and_grads("reference", inputs, wanted)
            values = outputs_and_grads("cpu", inputs, wanted, chunk_size=10)
            assert_close(values, expected, 1e-10)
    finally:
        torch.set_num_threads(previous)


def test_without_initial_state(kernel):
    x, log_a, B, C, _ = ssd_inputs(batch=2, length=40, heads=2, width=4, groups=1, states=8)
    expected = outputs_and_grads("reference", [x, log_a, B, C], [True] * 4)
    values = outputs_and_grads("cpu", [x, log_a, B, C], [True] * 4, chunk_size=8)
    assert_close(values, expected, 1e-10)


def test_bfloat16_inputs_run_in_float32_and_come_back_in_bfloat16(kernel):
    low = [t.to(torch.bfloat16) for t in ssd_inputs(2, 33, 2, 4, 1, 8)]
    y, state = ssd(*low, backend="cpu")
    assert y.dtype == state.dtype == torch.bfloat16
    expected_y, expected_state = ssd_reference(*[t.double() for t in low])
    assert_close([y, state], [expected_y, expected_state], 1e-2)


def test_keeps_only_chunk_states_for_the_backward(kernel):
    # Autograd keeps the inputs and one (b, h, p, n) state every (at most) 32 steps: less than
    # the states of every step, which the backward rebuilds chunk by chunk.
    batch, length, heads, width, states = 2, 256, 2, 4, 16
    inputs = [t.requires_grad_() for t in ssd_inputs(batch, length, heads, width, 1, states)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        ssd(*inputs, backend="cpu", chunk_size=64)
    inputs_size = sum(t.numel() for t in inputs[:4])
    assert sum(saved) - inputs_size <= batch * heads * (length // 32) * width * states
