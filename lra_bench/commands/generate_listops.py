"""`lra-bench data generate listops`: ListOps in the official TSV format."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from tasks.listops.generator import ListOpsParams, write_listops

    params = ListOpsParams(
        train=args.train,
        val=args.val,
        test=args.test,
        min_length=args.min_length,
        max_length=args.max_length,
        max_depth=args.max_depth,
        max_args=args.max_args,
        seed=args.seed,
    )
    tic = time.perf_counter()
    with tqdm(total=params.total, desc="generating ListOps", unit="ex", file=sys.stderr) as bar:
        paths = write_listops(
            Path(args.out),
            params,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=bar.update,
        )
    seconds = time.perf_counter() - tic
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"{params.total} examples in {seconds:.1f} s ({args.workers} worker(s))")


def register_generate(generators: argparse._SubParsersAction) -> None:
    parser = generators.add_parser(
        "listops", help="ListOps in the official TSV format (defaults: LRA's settings)"
    )
    parser.add_argument("--out", required=True, help="folder for basic_{train,val,test}.tsv")
    parser.add_argument("--train", type=int, default=96_000, help="training examples")
    parser.add_argument("--val", type=int, default=2_000, help="validation examples")
    parser.add_argument("--test", type=int, default=2_000, help="test examples")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--min-length", type=int, default=500, help="exclusive lower bound")
    parser.add_argument("--max-length", type=int, default=2_000, help="exclusive upper bound")
    parser.add_argument("--max-depth", type=int, default=10, help="deepest nesting of operators")
    parser.add_argument("--max-args", type=int, default=10, help="most arguments of one operator")
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(handler=run)
