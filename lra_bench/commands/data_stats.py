"""`lra-bench data stats TASK`: the splits a task loads (through its cache) in a profile: counts,
label balance and length distribution, beside the official LRA figures (LRA_SPEC section 2.0)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def split_stats(split, max_length: int) -> dict:
    """Counts, label fractions and length percentiles of one split (per document for pairs)."""
    lengths = np.asarray(split.lengths).reshape(-1)
    labels = np.asarray(split.labels)
    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    return {
        "examples": len(labels),
        "label_fractions": (counts / max(1, len(labels))).round(4).tolist(),
        "length_min": int(lengths.min()) if len(lengths) else 0,
        "length_median": float(np.median(lengths)) if len(lengths) else 0.0,
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "length_max": int(lengths.max()) if len(lengths) else 0,
        # Rows that fill the whole length were (almost always) truncated.
        "at_max_length": float((lengths == max_length).mean()) if len(lengths) else 0.0,
    }


def format_stats(data, official: dict | None) -> list[str]:
    lines = [
        f"{data.name}: vocabulary {data.vocab_size}, {data.num_classes} classes, "
        f"max length {data.max_length}"
        + (" per document (pairs)" if data.pair else "")
        + f", fingerprint {data.fingerprint}",
    ]
    if official:
        lines.append(
            f"  official: {official['classes']} classes, max length {official['max_length']}"
        )
    if data.validation_is_test:
        lines.append("  validation is the test split (as in LRA)")
    for name, split in data.splits.items():
        stats = split_stats(split, data.max_length)
        expected = f" (official {official[name]:,})" if official and name in official else ""
        labels = " ".join(f"{i}:{100 * f:.1f}%" for i, f in enumerate(stats["label_fractions"]))
        lines.append(
            f"  {name:<5} {stats['examples']:>8,} examples{expected}; labels {labels}; "
            f"length min {stats['length_min']} median {stats['length_median']:.0f} "
            f"mean {stats['length_mean']:.0f} max {stats['length_max']}, "
            f"{100 * stats['at_max_length']:.1f}% at max length"
        )
    return lines


def run(args: argparse.Namespace) -> None:
    from hydra.utils import instantiate

    from lra_bench.compose import compose
    from tasks.official import OFFICIAL

    overrides = [f"task={args.task}", f"profile={args.profile}", *args.overrides]
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    cfg = compose(overrides)
    data = instantiate(cfg.task.data).load(Path(cfg.data_root), progress=not args.quiet)
    for line in format_stats(data, OFFICIAL.get(cfg.task.name)):
        print(line)


def register_data(data_commands: argparse._SubParsersAction) -> None:
    parser = data_commands.add_parser(
        "stats", help="counts, labels and lengths of a task's splits vs the official figures"
    )
    parser.add_argument("task", help="a task of conf/task/ (listops, text, retrieval, ...)")
    # Right after TASK: argparse takes both positionals at once.
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. task.data.max_length=1000"
    )
    parser.add_argument("--profile", default="lra", help="smoke | mini | lra (default lra)")
    parser.add_argument("--data-root", help="default: data_root of conf/config.yaml")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)
