"""`lra-bench speed`: training steps/s and peak memory against sequence length for any zoo model
(the LRA paper's Table 2 protocol), with plots and a Markdown summary. The measurement options
are the fields of lra_bench.speed.settings.SpeedSettings, with its defaults."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per SpeedSettings field that has help, its default the field's."""
    from lra_bench.speed.settings import SpeedSettings

    for spec in dataclasses.fields(SpeedSettings):
        meta = spec.metadata
        if not meta.get("help"):
            continue
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        if isinstance(default, bool):
            parser.add_argument(
                meta["flag"] or f"--{spec.name.replace('_', '-')}",
                dest=spec.name,
                action="store_false" if default else "store_true",
                help=meta["help"],
            )
            continue
        parse = meta["parse"] or (type(default) if default is not None else None)
        if parse is None:  # an optional number: int or float as the annotation says
            parse = float if "float" in str(spec.type) else int
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        parser.add_argument(
            f"--{spec.name.replace('_', '-')}",
            dest=spec.name,
            type=parse,
            default=default,
            help=f"{meta['help']} (default: {shown})",
        )


def run(args: argparse.Namespace) -> None:
    from lra_bench.speed.report import write_report
    from lra_bench.speed.runner import CSV_NAME, run_speed
    from lra_bench.speed.settings import SpeedSettings

    out = Path(args.out)
    fields = {f.name for f in dataclasses.fields(SpeedSettings)}
    settings = SpeedSettings(**{k: v for k, v in vars(args).items() if k in fields})
    if not args.report_only:
        tic = time.perf_counter()
        run_speed(settings, out, keep_earlier_rows=args.merge)
        print(f"measured in {time.perf_counter() - tic:.0f} s")
    elif not (out / CSV_NAME).exists():
        raise FileNotFoundError(f"{out / CSV_NAME} does not exist; run without --report-only")
    written = write_report(
        out,
        task=settings.task,
        size=settings.size,
        batch=settings.batch,
        leaderboard_path=args.leaderboard,
        profile=args.profile,
        bubble_length=args.bubble_length,
    )
    print("wrote " + ", ".join(str(p) for p in [out / CSV_NAME, *written]))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "speed",
        help="steps/s and peak memory against sequence length (LRA Table 2 protocol)",
        description=__doc__,
    )
    settings_options(parser)
    parser.add_argument(
        "--out",
        default="results",
        help="folder for speed_memory.csv/.md, plots/ (default: results)",
    )
    parser.add_argument(
        "--leaderboard",
        default=None,
        help="accuracy for the bubble chart (default OUT/leaderboard.csv)",
    )
    parser.add_argument(
        "--profile", default="lra", help="leaderboard profile for the bubble chart (default: lra)"
    )
    parser.add_argument(
        "--bubble-length", type=int, default=None, help="length of the bubble chart (default 4K)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="redraw plots and summary from OUT's CSV"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an earlier run in OUT that this one does not measure again "
        "(default: OUT's report holds this run's rows only; the earlier CSV is kept as "
        "speed_memory.previous.csv)",
    )
    parser.set_defaults(handler=run)
