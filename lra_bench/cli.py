"""`lra-bench`: data generation and import, the leaderboard. Training runs go through the Hydra
app (`python -m lra_bench.run`, or `make bench`).

    lra-bench data generate listops --out DIR --train N --val N --test N --seed S
    lra-bench data generate pathfinder --out DIR --resolution R --difficulty D --count N
    lra-bench data import lra_release.gz --out DIR
    lra-bench data verify DIR
    lra-bench data stats TASK [overrides] [--profile lra]
    lra-bench leaderboard --results DIR
    lra-bench speed --models a,b --lengths 1024,2048,3072,4096 --batch 32 --out DIR
    lra-bench budget [--profile lra] [--tasks a,b] [--models a,b]
    lra-bench records migrate DIR
"""

from __future__ import annotations

import argparse
import sys

from lra_bench.commands import (
    budget,
    data_import,
    data_stats,
    data_verify,
    generate_listops,
    generate_pathfinder,
    leaderboard,
    records,
    speed,
)

# Modules adding a top-level command (`register`) and ones adding a generator (`register_generate`).
COMMANDS = [leaderboard, speed, records, budget]
GENERATORS = [generate_listops, generate_pathfinder]
# Modules adding a `data` sub-command (`register_data`).
DATA_COMMANDS = [data_import, data_verify, data_stats]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lra-bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="generate, import and inspect data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    for module in DATA_COMMANDS:
        module.register_data(data_commands)
    generate = data_commands.add_parser("generate", help="generate a synthetic task")
    generators = generate.add_subparsers(dest="task", required=True)
    for module in GENERATORS:
        module.register_generate(generators)
    for module in COMMANDS:
        module.register(commands)
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
