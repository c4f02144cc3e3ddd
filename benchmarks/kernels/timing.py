"""Timing and peak memory of one forward, and one forward + backward, of a function.

Time: warm-up calls (which also compile Triton kernels), then the median of `repeats` timed
calls; on CUDA each call is timed by CUDA events and synchronised, on CPU by perf_counter. When
the first warm-up call already takes over `slow_seconds`, one timed call is taken instead, and
on CPU that first call itself is the measurement.

The forward runs with autograd recording, as in training (what a backward needs is saved), so
that forward + backward minus forward is the backward's time. The backward is that of the first
output only (a scan's final state is not what a model trains on), with a fixed random gradient.

Peak memory, one extra untimed forward + backward, above what was allocated before it (so the
inputs do not count):
- CUDA: the caching allocator's peak (torch.cuda.max_memory_allocated).
- CPU: the allocator's live bytes at operator boundaries, summed in time order from torch's
  profiler (profile_memory): exact for what outlives an operator, blind to a temporary that one
  operator allocates and frees inside itself, so a lower bound. (The process's peak resident
  set would mostly count memory that glibc keeps cached after earlier measurements.)
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    runs: int


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(call: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    call()
    return time.perf_counter() - begin


def measure(
    call: Callable[[], object],
    device: torch.device,
    warmup: int,
    repeats: int,
    slow_seconds: float,
) -> Timing:
    _synchronize(device)
    first = _time_once(call, device)
    if first > slow_seconds and device.type == "cpu":
        # Nothing compiles on CPU (Triton is not timed there), so a call this slow is its own
        # measurement; on CUDA the first call may hold a Triton compilation, so one more runs.
        return Timing(first, first, first, 1)
    for _ in range(warmup - 1):
        _time_once(call, device)
    runs = [_time_once(call, device) for _ in range(1 if first > slow_seconds else repeats)]
    return Timing(statistics.median(runs), min(runs), max(runs), len(runs))


def first_output(result) -> torch.Tensor:
    return result[0] if isinstance(result, tuple | list) else result


def forward_backward(
    forward: Callable[[], object], leaves: list[torch.Tensor]
) -> Callable[[], object]:
    """A function running forward and the backward of its first output into `leaves`; forward
    itself when there are none (an op of integer inputs, cases.Case.forward_only)."""
    if not leaves:
        return forward
    sample = first_output(forward())
    generator = torch.Generator(device=sample.device).manual_seed(0)
    gradient = torch.randn(
        sample.shape, dtype=sample.dtype, device=sample.device, generator=generator
    )
    del sample

    def call():
        output = first_output(forward())
        return torch.autograd.grad(output, leaves, gradient, allow_unused=True)

    return call


def peak_memory_bytes(call: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by one call above what was allocated before it (module docstring)."""
    if device.type == "cuda":
        _synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        _synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with (
        _quiet_stderr(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler,
    ):
        call()
    live = peak = 0
    for event in sorted(profiler.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return int(peak)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silences file descriptor 2 (the profiler's C++ side prints a line when it starts and
    stops, which would interleave with the benchmark's progress lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


MEMORY_METHOD = {
    "cuda": "CUDA allocator peak above the inputs",
    "cpu": "profiler's live bytes at operator boundaries above the inputs (a lower bound)",
}
