"""`lra-bench leaderboard`: aggregate every run record under a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    from lra_bench.leaderboard import format_row, write_leaderboard

    results = Path(args.results)
    if not results.is_dir():  # a typo must not leave an empty results folder behind
        raise FileNotFoundError(f"--results {results}: no such folder")
    table = write_leaderboard(results, plot=not args.no_plot)
    for line in table.attrs["skipped"]:
        print(f"left out {line}", file=sys.stderr)
    if table.empty:
        print(f"no run records under {args.results}")
        return
    for _, row in table.iterrows():
        print(format_row(row))
    print(f"wrote {Path(args.results) / 'leaderboard.csv'}, leaderboard.md and leaderboard.html")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("leaderboard", help="aggregate run records into a leaderboard")
    parser.add_argument(
        "--results",
        default="results",
        help="a results folder: its records are DIR/runs/<task>/<model>/<profile>/<run>/",
    )
    parser.add_argument("--no-plot", action="store_true", help="write the tables only, no plots")
    parser.set_defaults(handler=run)
