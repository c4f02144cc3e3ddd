"""Pathfinder generator speed and image statistics: milliseconds per image on one core, the
fractions of zero and of faint (1..5) pixels, the mean pixel, the rate of positive labels, the
distractor snakes placed, the tries the two target snakes took and the seed orientations, for
LRA's Pathfinder (32 px) and Path-X (128 px) settings.

    .venv/bin/python benchmarks/pathfinder_generator_speed.py [--images 300 40] [--seed 0] \
        [--difficulties easy intermediate hard] [--sheet docs/pathfinder_samples.png]

Prints one JSON line per setting after a machine header. Time is the process's CPU time (one
process, so one core), which stays meaningful on a shared machine; wall time is printed beside
it. Per-process set-up (drawing the paddle stamps, ~0.1 s) is timed apart. Targets: at most
19 ms (32 px) and 150 ms (128 px) per image, ten times faster than the original generator's
0.19 s and 1.5 s (LRA_SPEC.md section 4.5).

What to expect (the original's own figures are in tests/test_pathfinder_generator.py): at
32 px most seed orientations can never place a snake (the original's cv2 border artifact,
tasks/pathfinder/render.py `untapped_pixels`), so the first target seed and every distractor
seed point at -150..-121 degrees, the two targets take ~310 tries at hard and only ~1.2 of 5
distractors fit; ~66% of a hard image's pixels are 0 (easy ~77%). At 128 px the artifact
barely acts and ~86% of pixels are 0, as LRA_SPEC says. Target tries are heavy-tailed (the
per-image sd is about the mean), so the time of 40 images at 128 px varies by ~15% between
seeds.
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
        "faint_pixel_fraction": round(float(((pixels >= 1) & (pixels <= 5)).mean()), 4),
        "mean_pixel": round(float(pixels.mean()), 2),
        "positive_rate": round(float(np.mean([s.label for s in samples])), 4),
        "distractors_placed_mean": round(float(np.mean([len(s.distractors) for s in samples])), 3),
        "distractors_attempted": params.num_distractor_snakes,
        "target_tries_mean": round(float(np.mean([s.target_tries for s in samples])), 1),
        **seed_orientations(samples),
    }, samples


def seed_orientations(samples: list) -> dict:
    """Range (degrees) and number of distinct orientations of the seed paddles: of the first
    target snake (seeded on a free tail), of the second (seed_distance px away, unchecked) and
    of the distractors."""

    def summary(degrees: list[int]) -> dict:
        if not degrees:
            return {"range": None, "distinct": 0}
        return {"range": [min(degrees), max(degrees)], "distinct": len(set(degrees))}

    # A seed paddle's stamp id is its orientation id: degrees + 180.
    first = [s.targets[0].paddles[0][0] - 180 for s in samples]
    second = [s.targets[1].paddles[0][0] - 180 for s in samples]
    distractors = [d.paddles[0][0] - 180 for s in samples for d in s.distractors]
    return {
        "seed_degrees_first_target": summary(first),
        "seed_degrees_second_target": summary(second),
        "seed_degrees_distractors": summary(distractors),
    }


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
