"""`lra-bench speed`: training steps/s and peak memory against sequence length for any zoo model
(the LRA paper's Table 2 protocol), with plots and a Markdown summary."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _names(text: str) -> list[str]:
    """'a,b' -> ['a', 'b']; 'all' -> every conf/model config (the whole zoo)."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    if names == ["all"]:
        from lra_bench import REPO_ROOT

        return sorted(path.stem for path in (REPO_ROOT / "conf" / "model").glob("*.yaml"))
    return names


def run(args: argparse.Namespace) -> None:
    from lra_bench.speed import CSV_NAME, SpeedSettings, run_speed
    from lra_bench.speed_report import write_report

    out = Path(args.out)
    if not args.report_only:
        settings = SpeedSettings(
            models=args.models,
            lengths=args.lengths,
            task=args.task,
            batch=args.batch,
            size=args.size,
            warmup=args.warmup,
            steps=args.steps,
            device=args.device,
            threads=args.threads,
            timeout=args.timeout,
            memory_limit_gb=args.memory_limit_gb,
            count_flops=not args.no_flops,
            matmul_size=args.matmul_size,
        )
        tic = time.perf_counter()
        run_speed(settings, out)
        print(f"measured in {time.perf_counter() - tic:.0f} s")
    elif not (out / CSV_NAME).exists():
        raise FileNotFoundError(f"{out / CSV_NAME} does not exist; run without --report-only")
    written = write_report(
        out,
        task=args.task,
        size=args.size,
        batch=args.batch,
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
    parser.add_argument(
        "--models",
        type=_names,
        default=["transformer"],
        help="comma-separated conf/model names, or all",
    )
    parser.add_argument("--task", default="text", help="whose token shape (vocabulary, classes)")
    parser.add_argument(
        "--lengths",
        type=_ints,
        default=[1024, 2048, 3072, 4096, 8192, 16384, 32768, 65536],
        help="comma-separated sequence lengths (default: LRA's 1K-4K, then 8K-64K)",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", default="lra_text", help="a preset of conf/speed/sizes.yaml")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per measurement")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per measurement")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per measurement (start-up included)"
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        help="cap per measurement: CPU RLIMIT_DATA above the baseline, CUDA allocator fraction",
    )
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting and MFU")
    parser.add_argument(
        "--matmul-size",
        type=int,
        default=None,
        help="side of the peak-FLOP/s matmul (default 2048 CPU, 8192 CUDA; 0 = no peak)",
    )
    parser.add_argument("--out", default="results", help="folder for speed_memory.csv/.md, plots/")
    parser.add_argument(
        "--leaderboard",
        default=None,
        help="accuracy for the bubble chart (default OUT/leaderboard.csv)",
    )
    parser.add_argument("--profile", default="lra", help="leaderboard profile for the bubble chart")
    parser.add_argument(
        "--bubble-length", type=int, default=None, help="length of the bubble chart (default 4K)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="redraw plots and summary from OUT's CSV"
    )
    parser.set_defaults(handler=run)
