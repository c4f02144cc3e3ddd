"""Pathfinder generator speed and image statistics: milliseconds per image on one core, the
fraction of zero pixels and the rate of positive labels, for LRA's Pathfinder (32 px) and
Path-X (128 px) settings.

    .venv/bin/python benchmarks/pathfinder_generator_speed.py [--images 300 40] [--seed 0] \
        [--sheet docs/pathfinder_samples.png]

Prints one JSON line per setting after a machine header. Time is the process's CPU time (one
process, so one core), which stays meaningful on a shared machine; wall time is printed beside
it. Per-process set-up (drawing the paddle stamps, ~0.1 s) is timed apart. Targets: at most
19 ms (32 px) and 150 ms (128 px) per image, ten times faster than the original generator's
0.19 s and 1.5 s (LRA_SPEC.md section 4.5). Zero pixels: ~86% at 128 px as LRA_SPEC says; at
32 px hard ~55% (easy ~65%), below LRA_SPEC's ~66-77%: ~22% of pixels are the faint (1..5)
Lanczos halo of the original's rendering, reproduced byte for byte (see the tests).
--sheet also draws a grid of the first images of each setting with their labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import PIL

from tasks.pathfinder.params import lra_params
from tasks.pathfinder.snakes import draw_sample, geometry

ORIGINAL_SECONDS = {32: 0.19, 128: 1.5}  # per image at contour length 14 (hard), one core


def measure(resolution: int, difficulty: str, images: int, seed: int) -> tuple[dict, list]:
    params = lra_params(resolution, difficulty)
    cpu = time.process_time()
    for margin in params.paddle_margin_list:
        geometry(params, margin)
    setup = time.process_time() - cpu

    rng = np.random.default_rng(seed)
    cpu, wall = time.process_time(), time.perf_counter()
    samples = [draw_sample(params, rng) for _ in range(images)]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pixels = np.stack([s.image for s in samples])
    ms = 1000 * cpu / images
    return {
        "resolution": resolution,
        "difficulty": difficulty,
        "images": images,
        "ms_per_image_cpu": round(ms, 2),
        "ms_per_image_wall": round(1000 * wall / images, 2),
        "speedup_vs_original": round(1000 * ORIGINAL_SECONDS[resolution] / ms, 1)
        if difficulty == "hard"
        else None,
        "setup_seconds": round(setup, 3),
        "zero_pixel_fraction": round(float((pixels == 0).mean()), 4),
        "zero_pixel_fraction_p5_p95": np.percentile((pixels == 0).mean(axis=(1, 2)), [5, 95])
        .round(4)
        .tolist(),
        "positive_rate": round(float(np.mean([s.label for s in samples])), 4),
    }, samples


def draw_sheet(path: str, rows: list[tuple[str, list]], columns: int = 8) -> None:
    """One row of `columns` images per setting, titled with their labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 1.9 * len(rows)))
    for row, (name, samples) in zip(np.atleast_2d(axes), rows):
        for ax, sample in zip(row, samples):
            ax.imshow(sample.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(f"label {sample.label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=9)
    fig.suptitle(
        "Generated Pathfinder images (1 = the circles are joined by one dashed contour)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, nargs=2, default=[300, 40], help="images at 32 px and at 128 px"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulties", nargs="+", default=["hard"])
    parser.add_argument("--sheet", help="also save a grid of sample images here (PNG)")
    args = parser.parse_args()
    header = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
    print(json.dumps({"header": header}))
    sheet = []
    for difficulty in args.difficulties:
        for resolution, images in zip((32, 128), args.images):
            stats, samples = measure(resolution, difficulty, images, args.seed)
            print(json.dumps(stats), flush=True)
            sheet.append((f"{resolution}x{resolution} {difficulty}", samples))
    if args.sheet:
        draw_sheet(args.sheet, sheet)


if __name__ == "__main__":
    main()
