"""`lra-bench records migrate DIR`: rewrite earlier run records to the current schema.
`lra-bench records list DIR`: one line per run (runs.csv, runs.md in DIR)."""

from __future__ import annotations

import argparse
from pathlib import Path


def results_folder(args: argparse.Namespace) -> Path:
    """The DIR argument, refused with its name when it is not a folder."""
    results = Path(args.results)
    if not results.is_dir():
        raise FileNotFoundError(f"{results} is not a folder")
    return results


def run_migrate(args: argparse.Namespace) -> None:
    from lra_bench.leaderboard import write_leaderboard
    from lra_bench.migrate import migrate_results

    results = results_folder(args)
    for line in migrate_results(results):
        print(line)
    write_leaderboard(results)


def run_list(args: argparse.Namespace) -> None:
    from lra_bench.run_table import write_run_table

    results = results_folder(args)
    for path in write_run_table(results):
        print(f"wrote {path}")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("records", help="maintain run records")
    actions = parser.add_subparsers(dest="records_command", required=True)
    migrate = actions.add_parser(
        "migrate",
        help="rewrite schema-1 records as schema 2 (new identity hash, run folder renamed)",
    )
    migrate.add_argument("results", help="a results folder (records under runs/)")
    migrate.set_defaults(handler=run_migrate)
    listing = actions.add_parser(
        "list",
        help="one line per run (status, accuracy, steps/s, wall time, threads, commit) "
        "-> runs.csv and runs.md in the folder",
    )
    listing.add_argument("results", help="a results folder (records under runs/)")
    listing.set_defaults(handler=run_list)
