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
    lra-bench records list DIR

Every expected failure (bad arguments, a missing or damaged file) is answered with one line
naming the culprit and exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import tarfile

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


# What a command raises for bad input or a bad file (as opposed to a bug): one line, exit 2.
EXPECTED_ERRORS = (ValueError, OSError, EOFError, tarfile.TarError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage itself is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (their examples keep their lines); every option's help ends
    with its default, except flags, required options and help that states it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def shows_default(action: argparse.Action) -> bool:
    """An option that takes a value, is not required and has a default worth saying."""
    return (
        bool(action.option_strings)
        and action.nargs != 0  # store_true / store_false: the flag's help says what it does
        and not action.required
        and action.default not in (None, argparse.SUPPRESS)
    )


def parsers(parser: argparse.ArgumentParser):
    """The parser and every sub-command's parser beneath it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lra-bench",
        description=__doc__,
        epilog="training:  python -m lra_bench.run task=T model=M profile=P seed=S  (make bench)\n"
        "sweeps:    python -m lra_bench.run -m model=a,b seed=0,1 ...  (make sweep)\n"
        "`lra-bench COMMAND --help` lists a command's options and their defaults.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
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
    for each in parsers(parser):
        each.formatter_class = HelpFormatter
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments; Hydra overrides (`key=value`) are taken wherever they stand on the line,
    after options too, by the commands that accept them (`data stats`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    parser = build_parser()
    args, extra = parser.parse_known_args([item for item in argv if item != "--debug"])
    args.debug = debug
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if hasattr(args, "overrides") and overrides == extra:
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        args.handler(args)
    except Exception as error:
        if args.debug or not is_expected(error):
            raise
        print(f"lra-bench: error: {describe(error)}", file=sys.stderr)
        sys.exit(2)


def is_expected(error: BaseException) -> bool:
    """Bad input or a bad file, not a bug: the errors the commands raise on purpose, and
    Hydra's and OmegaConf's refusals of an override (they name the key)."""
    library = type(error).__module__.split(".")[0]
    return isinstance(error, EXPECTED_ERRORS) or library in ("hydra", "omegaconf")


def describe(error: BaseException) -> str:
    """One line: the message (which names the file or setting), with the kind of error where
    the message alone would not say it."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    if not isinstance(error, ValueError | OSError):
        text = f"{type(error).__name__}: {text}"
    return text


if __name__ == "__main__":
    main()
