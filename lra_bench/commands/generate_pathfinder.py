"""`lra-bench data generate pathfinder`: Pathfinder / Path-X images with LRA's settings, in the
official layout (PNG + text metadata) or as array shards."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from tasks.pathfinder.generator import (
        generate_pathfinder_official,
        generate_pathfinder_shards,
    )

    generate = (
        generate_pathfinder_official if args.format == "official" else generate_pathfinder_shards
    )
    tic = time.perf_counter()
    desc = f"generating Pathfinder{args.resolution} {args.difficulty}"
    with tqdm(total=args.count, desc=desc, unit="img", file=sys.stderr) as bar:
        folder = generate(
            Path(args.out),
            args.resolution,
            args.difficulty,
            args.count,
            args.seed,
            args.workers,
            args.batch_size,
            overwrite=args.overwrite,
            progress=bar.update,
        )
    seconds = time.perf_counter() - tic
    print(f"{args.format}: {folder}")
    print(f"{args.count} images in {seconds:.1f} s ({args.workers} worker(s))")


def register_generate(generators: argparse._SubParsersAction) -> None:
    parser = generators.add_parser(
        "pathfinder",
        help="Pathfinder (32 px) / Path-X (128 px) images with LRA's generator settings",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="official: the root that gets pathfinder<R>/<curv_*>/; shards: the shard folder",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=32,
        choices=[32, 64, 128, 256],
        help="image side in pixels (Path-X: 128)",
    )
    parser.add_argument(
        "--difficulty",
        default="hard",
        choices=["easy", "intermediate", "hard"],
        help="contour length 6 / 9 / 14 (LRA uses hard)",
    )
    parser.add_argument("--count", type=int, default=200_000, help="images (LRA: 200000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument(
        "--format",
        default="official",
        choices=["official", "shards"],
        help="official: PNG files + text metadata as in lra_release; shards: .npz arrays",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="images per metadata file / shard"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing data")
    parser.set_defaults(handler=run)
