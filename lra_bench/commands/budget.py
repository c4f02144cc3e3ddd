"""`lra-bench budget`: every model's parameters on every task of a profile, against the
Transformer's on the same task (LRA allowed at most 10% more)."""

from __future__ import annotations

import argparse


def run_budget(args: argparse.Namespace) -> None:
    from lra_bench.budget import budget_table, format_budget
    from lra_bench.compose import option_names

    tasks = args.tasks.split(",") if args.tasks else option_names("task")
    models = args.models.split(",") if args.models else option_names("model")
    for names, group in ((tasks, "task"), (models, "model")):
        unknown = sorted(set(names) - set(option_names(group)))
        if unknown:
            raise ValueError(f"unknown {group}(s) {', '.join(unknown)}")
    for line in format_budget(budget_table(args.profile, tasks, models)):
        print(line)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "budget",
        help="parameters of every model x task against the Transformer's (flags > 1.10)",
    )
    parser.add_argument("--profile", default="lra", help="the profile to compose (default: lra)")
    parser.add_argument("--tasks", default=None, help="comma-separated; default: every task")
    parser.add_argument("--models", default=None, help="comma-separated; default: every model")
    parser.set_defaults(handler=run_budget)
