"""Sequences per second read from the split cache (memory-mapped .npy, tasks/cache.py) through
our batch iterator (lra_bench/batches.py), alone and inside a torch DataLoader with workers.

    .venv/bin/python benchmarks/loader_throughput.py [--rows 50000] [--length 1024] [--seconds 5]

Builds a cache of random int16 tokens of full length (the worst case: no batch is cut short) in a
temporary folder, reads it back as the engine does, and prints one JSON line per setting with a
machine header. The page cache is warm after the build, as it is after the first epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lra_bench.batches import TrainBatches
from tasks.base import Split
from tasks.cache import CacheBuilder, load_or_build


class StepBatches(Dataset):
    """Batch `step` of TrainBatches as one DataLoader item (the loader does no collation)."""

    def __init__(self, batches: TrainBatches, steps: int) -> None:
        self.batches, self.steps = batches, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.batches.batch(step)


def build_cache(root: Path, rows: int, length: int) -> Split:
    def build(builder: CacheBuilder) -> None:
        writer = builder.writer("train", (length,), np.int16)
        rng = np.random.default_rng(0)
        for start in range(0, rows, 4096):
            n = min(4096, rows - start)
            writer.append(
                rng.integers(1, 257, (n, length), dtype=np.int16),
                np.full(n, length, dtype=np.int32),
                rng.integers(0, 2, n),
            )

    splits, _ = load_or_build(root, "benchmark", {"rows": rows, "length": length}, "random", build)
    return splits["train"]


def measure(iterator, seconds: float, batch_size: int) -> float:
    """Sequences per second drawn from `iterator` for about `seconds` (after one warm-up)."""
    next(iterator)
    count, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        tokens, lengths, labels = next(iterator)
        count += len(labels)
    return count / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    header = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": args.rows,
        "length": args.length,
    }
    print(json.dumps({"header": header}))
    with tempfile.TemporaryDirectory() as root:
        tic = time.perf_counter()
        split = build_cache(Path(root), args.rows, args.length)
        print(json.dumps({"cache_build_seconds": round(time.perf_counter() - tic, 2)}))
        tic = time.perf_counter()
        build_cache(Path(root), args.rows, args.length)  # now a cache hit
        print(json.dumps({"cache_hit_seconds": round(time.perf_counter() - tic, 4)}))
        for batch_size in args.batch_sizes:
            batches = TrainBatches(split, batch_size, seed=0)
            steps = 10**9  # more than any measurement draws; epochs wrap around
            direct = iter(batches.batch(step) for step in range(steps))
            settings = [("batch iterator", direct)]
            for workers in (0, 2):
                loader = DataLoader(
                    StepBatches(batches, steps),
                    batch_size=None,
                    num_workers=workers,
                    prefetch_factor=4 if workers else None,
                )
                settings.append((f"DataLoader, {workers} workers", iter(loader)))
            for name, iterator in settings:
                rate = measure(iterator, args.seconds, batch_size)
                print(
                    json.dumps(
                        {"reader": name, "batch_size": batch_size, "sequences_per_s": round(rate)}
                    )
                )


if __name__ == "__main__":
    main()
