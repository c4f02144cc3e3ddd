"""`lra-bench` command line: data generation and the leaderboard. Training runs go through the
Hydra app (`python -m lra_bench.run`, or `make bench`).

    lra-bench data generate listops --out DIR --train N --val N --test N --seed S
    lra-bench leaderboard --results DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _generate_listops(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from tasks.listops_generator import ListOpsParams, write_listops

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


def _leaderboard(args: argparse.Namespace) -> None:
    from lra_bench.leaderboard import format_row, write_leaderboard

    table = write_leaderboard(Path(args.results), plot=not args.no_plot)
    if table.empty:
        print(f"no run records under {args.results}")
        return
    for _, row in table.iterrows():
        print(format_row(row))
    print(f"wrote {Path(args.results) / 'leaderboard.csv'} and leaderboard.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lra-bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="generate, import and inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    generate = data_commands.add_parser("generate", help="generate a synthetic task")
    generators = generate.add_subparsers(dest="task", required=True)

    listops = generators.add_parser(
        "listops", help="ListOps in the official TSV format (defaults: LRA's settings)"
    )
    listops.add_argument("--out", required=True, help="folder for basic_{train,val,test}.tsv")
    listops.add_argument("--train", type=int, default=96_000)
    listops.add_argument("--val", type=int, default=2_000)
    listops.add_argument("--test", type=int, default=2_000)
    listops.add_argument("--seed", type=int, default=0)
    listops.add_argument("--min-length", type=int, default=500, help="exclusive lower bound")
    listops.add_argument("--max-length", type=int, default=2_000, help="exclusive upper bound")
    listops.add_argument("--max-depth", type=int, default=10)
    listops.add_argument("--max-args", type=int, default=10)
    listops.add_argument("--workers", type=int, default=2, help="generator processes")
    listops.add_argument("--overwrite", action="store_true", help="replace existing files")
    listops.set_defaults(handler=_generate_listops)

    board = commands.add_parser("leaderboard", help="aggregate run records into a leaderboard")
    board.add_argument("--results", default="results", help="folder searched for record.json")
    board.add_argument("--no-plot", action="store_true")
    board.set_defaults(handler=_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"lra-bench: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
