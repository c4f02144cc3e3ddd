"""`lra-bench data import ARCHIVE --out DIR`: unpack the official lra_release.gz where the loaders
look (`DIR/lra_release/`; the layout is documented in tasks/release.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    from tasks.release import import_release

    tic = time.perf_counter()
    summary = import_release(
        Path(args.archive), Path(args.out), replace=args.replace, progress=not args.quiet
    )
    print(
        f"imported {summary.files} files ({summary.bytes / 1e9:.2f} GB) into "
        f"{summary.destination} in {time.perf_counter() - tic:.0f} s"
    )
    if summary.dropped_duplicates:
        print(
            "dropped the outer duplicate(s) of the nested copy: "
            + ", ".join(summary.dropped_duplicates)
        )
    print(f"check it with: lra-bench data verify {args.out}")


def register_data(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "import", help="unpack the official lra_release.gz into DIR/lra_release"
    )
    parser.add_argument("archive", help="lra_release.gz (a gzipped tar, ~7 GB)")
    parser.add_argument("--out", required=True, help="the data root (data/ or $LRA_DATA)")
    parser.add_argument(
        "--replace", action="store_true", help="replace an existing DIR/lra_release"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
