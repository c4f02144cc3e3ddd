"""The compiled CPU selective scan (models/ops/selective_scan/cpu.py) beyond the shared backend
tests (test_backends.py): several channel tiles and threads, inputs without gradients, low
precision inputs, what it keeps for the backward; its build: cached across processes, safe when
two processes build at once, and a missing or broken compiler that makes the op say so in one
line and run `chunked`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.ops import cpu_build, dispatch
from models.ops.selective_scan import OP, selective_scan
from models.ops.selective_scan.chunked import selective_scan_chunked
from models.ops.selective_scan.reference import selective_scan_reference
from tests.ops import compare
from tests.ops.compare import assert_close
from tests.ops.compiled import compiled_kernel

REPO = Path(__file__).resolve().parents[2]
F64 = torch.float64


@pytest.fixture(scope="module")
def kernel():
    return compiled_kernel("selective_scan_cpu", "selective_scan")


def scan_inputs(batch, length, channels, states, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=F64).to(dtype)

    u = randn(batch, length, channels)
    delta = F.softplus(randn(batch, length, channels) - 1)
    A = -torch.exp(randn(channels, states) * 0.5)
    B, C = randn(batch, length, states), randn(batch, length, states)
    D, h0 = randn(channels), randn(batch, channels, states)
    return [u, delta, A, B, C, D, h0]


def outputs_and_grads(backend, inputs, wanted, **options):
    return compare.outputs_and_grads(selective_scan, backend, inputs, wanted, **options)


@pytest.mark.parametrize("threads", [1, 2])
def test_tiles_threads_and_inputs_without_gradients_match_the_reference(kernel, threads):
    # 70 channels: two forward tiles (64 + 6) and two backward tiles; batch 3 on 2 threads makes
    # the backward split rows into channel groups whose grad_B / grad_C partial sums are added.
    inputs = scan_inputs(batch=3, length=77, channels=70, states=16)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for wanted in ([True] * 7, [False, True, False, True, False, False, True]):
            expected = outputs_and_grads("reference", inputs, wanted)
            values = outputs_and_grads("cpu", inputs, wanted, chunk_size=10)
            assert_close(values, expected, 1e-10)
    finally:
        torch.set_num_threads(previous)


def test_without_skip_and_initial_state(kernel):
    u, delta, A, B, C, _, _ = scan_inputs(batch=2, length=40, channels=9, states=5)
    expected = outputs_and_grads("reference", [u, delta, A, B, C], [True] * 5)
    values = outputs_and_grads("cpu", [u, delta, A, B, C], [True] * 5, chunk_size=8)
    assert_close(values, expected, 1e-10)


def test_bfloat16_inputs_run_in_float32_and_come_back_in_bfloat16(kernel):
    inputs = scan_inputs(batch=2, length=33, channels=8, states=4)
    low = [x.to(torch.bfloat16) for x in inputs]
    y, state = selective_scan(*low, backend="cpu")
    assert y.dtype == state.dtype == torch.bfloat16
    expected_y, expected_state = selective_scan_reference(*[x.double() for x in low])
    assert_close([y, state], [expected_y, expected_state], 1e-2)


def test_keeps_only_chunk_states_for_the_backward(kernel):
    # What autograd keeps is the inputs and one state every (at most) 32 steps: less than the
    # (b, l, d, n) states of the whole scan, which the backward rebuilds chunk by chunk.
    inputs = [x.requires_grad_() for x in scan_inputs(batch=2, length=256, channels=8, states=16)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        selective_scan(*inputs, backend="cpu", chunk_size=128)
    inputs_size = sum(x.numel() for x in inputs)
    assert sum(saved) - inputs_size <= 2 * 256 // 32 * 8 * 16  # the kept states, no more
    assert sum(saved) < 2 * 256 * 8 * 16


def test_a_second_process_loads_the_build_from_the_cache(kernel):
    modified = kernel.path.stat().st_mtime_ns
    script = textwrap.dedent(
        """
        from models.ops import cpu_build
        from models.ops.selective_scan.cpu import SOURCE
        loaded = cpu_build.load_kernel("selective_scan_cpu", SOURCE)
        print(loaded.path, loaded.build_seconds)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(kernel.path), "None"]
    assert kernel.path.stat().st_mtime_ns == modified


@pytest.fixture
def fresh_dispatch(monkeypatch, tmp_path):
    """The op and the builder as in a new process, building into an empty cache."""
    dispatch.configure()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_build, "_loaded", {})
    monkeypatch.setattr(cpu_build, "_problems", {})
    monkeypatch.setattr(OP, "_broken", {})
    monkeypatch.setattr(OP, "_warned", set())
    monkeypatch.setattr(OP, "ran", {})
    yield
    dispatch.configure()


def run_auto_twice(capsys):
    inputs = scan_inputs(batch=2, length=20, channels=4, states=3)
    expected = selective_scan_chunked(*inputs)
    for _ in range(2):
        y, state = selective_scan(*inputs)  # auto: cpu first on CPU tensors
        assert torch.equal(y, expected[0]) and torch.equal(state, expected[1])
    lines = capsys.readouterr().err.strip().splitlines()
    return lines, dispatch.report(["selective_scan"])["selective_scan"]


def test_without_a_compiler_the_op_says_so_once_and_runs_chunked(
    fresh_dispatch, monkeypatch, capsys
):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    lines, ran = run_auto_twice(capsys)
    reason = "no C++ compiler (/nonexistent/c++ not found)"
    assert lines == [
        f"kernels: selective_scan: cpu backend unavailable or failed ({reason}); "
        "using chunked (optional)"
    ]
    assert ran == f"chunked (fallback from cpu: {reason})"


def test_a_failing_build_says_so_once_and_runs_chunked(fresh_dispatch, monkeypatch, capsys):
    monkeypatch.setenv("CXX", "/bin/false")  # a compiler that exists and fails
    lines, ran = run_auto_twice(capsys)
    assert len(lines) == 1 and "cpu backend unavailable or failed (C++ build failed" in lines[0]
    assert lines[0].endswith("using chunked (optional)")
    assert ran.startswith("chunked (fallback from cpu: C++ build failed")


@pytest.mark.slow
def test_two_processes_building_at_once_both_load_one_build(tmp_path):
    # A fresh cache with a lock file left by a builder that was killed: without the kernel lock
    # both would wait on it forever; with it, one builds, the other waits and loads.
    from models.ops.selective_scan.cpu import SOURCE

    env = {**os.environ, "PYTHONPATH": str(REPO), "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    script = textwrap.dedent(
        """
        import torch
        from models.ops import cpu_build
        from models.ops.selective_scan.cpu import SOURCE
        from models.ops.selective_scan import selective_scan
        loaded = cpu_build.load_kernel("selective_scan_cpu", SOURCE)
        y, _ = selective_scan(torch.ones(1, 3, 2), torch.ones(1, 3, 2), -torch.ones(2, 1),
                              torch.ones(1, 3, 1), torch.ones(1, 3, 1), backend="cpu")
        print(loaded.path, loaded.build_seconds is not None, float(y.sum()))
        """
    )
    cflags = [
        *cpu_build.CFLAGS,
        *cpu_build.VECTOR_FLAGS.get(torch.backends.cpu.get_cpu_capability(), []),
    ]
    name = cpu_build.kernel_name("selective_scan_cpu", SOURCE, cflags)
    (tmp_path / name).mkdir()
    (tmp_path / name / "lock").touch()
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [builder.communicate(timeout=600)[0].split() for builder in builders]
    assert all(builder.returncode == 0 for builder in builders)
    assert {output[0] for output in outputs} == {str(tmp_path / name / f"{name}.so")}
    assert sorted(output[1] for output in outputs) == ["False", "True"]  # one built
    assert outputs[0][2] == outputs[1][2]
