"""Keeping freed memory in the process for the next training step (glibc's malloc on Linux).

glibc serves every block above its mmap threshold (128 KiB at start, rising to at most 32 MiB
as large blocks are freed) with a fresh mmap and unmaps it at free, so each training step maps
its large activations (attention scores, score masks, (B, L, D, N) intermediates) anew and
page-faults every page in again. Measured on this repository's 2-core machine, one thread:
torch.exp of a 64 MiB tensor 121 ms with a fresh output, 34 ms once freed blocks are kept;
one Reformer layer's mini step (B 64, L 200) 2.25 -> 1.2 s. Raising the mmap and trim
thresholds keeps freed blocks in the heap for reuse. The price: the process does not return
memory to the system between steps, which a training process, back at its peak every step,
would not do usefully anyway. Numerics are untouched.

Only the training runner asks for it (lra_bench/run.py). The speed protocol (`make speed`, a
fresh process per model and length) keeps glibc's defaults on purpose: its CPU memory figure is
the resident-set peak, and a heap that keeps freed blocks keeps their fragments too (measured
with the speed workers keeping them, 2026-12-01: the explicit Transformer at 4K, batch 2,
9.69 GB, 25.6x its 1K figure, against 3.50 GB and 13x with the defaults in the committed
table), so the peak would stop measuring what the model needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BELOW = 1 << 30  # blocks up to 1 GiB come from the heap; larger ones are still mapped
_state = {"malloc": "default"}


def keep_freed_memory() -> str:
    """Raises glibc's mmap and trim thresholds to KEEP_BELOW for this process; returns what was
    done, e.g. 'glibc: freed blocks up to 1 GiB kept', or why not. LRA_MALLOC=default leaves the
    allocator alone. `describe()` then says what the allocator does: the first form, or
    'default' whatever the reason."""
    if os.environ.get("LRA_MALLOC") == "default":
        return "default (LRA_MALLOC=default)"
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "default (no glibc mallopt here)"
    done = mallopt(M_MMAP_THRESHOLD, KEEP_BELOW) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_BELOW) == 1
    if not done:
        return "default (mallopt refused)"
    _state["malloc"] = f"glibc: freed blocks up to {KEEP_BELOW / 2**30:g} GiB kept"
    return _state["malloc"]


def describe() -> str:
    """What this process's allocator does (for the run record's environment)."""
    return _state["malloc"]
