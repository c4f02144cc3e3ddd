"""Training steps/s of every zoo model in the default `mini` run (ListOps unless --task), the
figure a user of `make bench MODEL=...` waits on: N optimizer steps of the real run (data,
model, optimizer, schedule as `python -m lra_bench.run` builds them), each model in a fresh
process, one after another on the same machine.

    .venv/bin/python benchmarks/mini_steps.py [--models all] [--steps 40] [--threads 2]
        [--repo DIR]   # measure another checkout (e.g. a worktree of an earlier commit)
        [--malloc kept|default]   # default: LRA_MALLOC=default, glibc as it comes (allocator.py)
        [--repeats 1]   # rounds over the models, interleaved; the table gives each model's median
        [--out results/mini_steps/cpu-2core.csv]

Prints a table (steps/s and the ratio to the Transformer's) and writes it as CSV with a header
naming the machine, the commit measured and the date. Records go to a temporary folder.

Why repeats: on this 2-core machine one 40-step figure moves by 10-25% from one invocation to the
next (Mamba / Transformer read 0.54, 0.57 and 0.61 in three rounds within five minutes), so a
ratio target is judged on the median of several interleaved rounds, with the spread beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lra_bench.environment import git_state  # noqa: E402


def commit_of(repo: Path) -> str:
    """The measured checkout's short commit, '(dirty)' where its code differs from it (the run
    records' rule: results/ left out)."""
    git = git_state(repo)
    return (git["commit"] or "unknown")[:7] + (" (dirty)" if git["dirty"] else "")


def measure(
    repo: Path, model: str, task: str, steps: int, threads: int, results: Path, malloc: str = "kept"
) -> dict:
    """One run of `steps` steps; its record's steps/s (training time only) and wall time."""
    command = [
        sys.executable,
        "-m",
        "lra_bench.run",
        f"model={model}",
        f"task={task}",
        "profile=mini",
        f"trainer.max_steps={steps}",
        f"trainer.eval_every={steps}",
        f"results_dir={results}",
        "progress=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": str(threads)}
    env.pop("LRA_MALLOC", None)
    if malloc == "default":
        env["LRA_MALLOC"] = "default"  # lra_bench/allocator.py leaves glibc as it comes
    tic = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    records = sorted(results.glob(f"runs/{task}/{model}/mini/*/record.json"))
    if done.returncode != 0 or not records:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"model": model, "status": "failed", "error": tail[0], "wall_s": round(wall, 1)}
    record = json.loads(records[-1].read_text())
    return {
        "model": model,
        "status": record["status"],
        "steps_per_second": round(record["steps_per_second"], 3),
        "wall_s": round(wall, 1),
        "threads": record.get("environment", {}).get("threads"),
        "malloc": record.get("environment", {}).get("malloc", "default"),
        "kernel_backends": "; ".join(
            f"{k}: {v}" for k, v in record.get("kernel_backends", {}).items()
        ),
    }


def summarize(samples: dict[str, list[dict]]) -> list[dict]:
    """One row per model from its rounds (each a `measure` result): the median steps/s and
    wall time of its finished rounds, every round's figure (`rounds`), and the ratio of its
    median to the Transformer's median (`vs_transformer`). A model none of whose rounds finished
    keeps its first failure."""
    rows = []
    for rounds in samples.values():
        done = [r for r in rounds if r.get("steps_per_second")]
        if not done:
            rows.append(rounds[0])
            continue
        row = dict(done[0])
        row["steps_per_second"] = round(statistics.median(r["steps_per_second"] for r in done), 3)
        row["wall_s"] = round(statistics.median(r["wall_s"] for r in done), 1)
        row["rounds"] = " ".join(str(r["steps_per_second"]) for r in done)
        failed = len(rounds) - len(done)
        if failed:
            row["error"] = f"{failed} of {len(rounds)} rounds failed"
        rows.append(row)
    base = next(
        (
            r["steps_per_second"]
            for r in rows
            if r["model"] == "transformer" and r.get("steps_per_second")
        ),
        None,
    )
    for row in rows:
        if base and row.get("steps_per_second"):
            row["vs_transformer"] = round(row["steps_per_second"] / base, 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated conf/model names, or all")
    parser.add_argument("--task", default="listops")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to measure")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write")
    parser.add_argument(
        "--malloc",
        choices=("kept", "default"),
        default="kept",
        help="kept: the runner keeps freed blocks (its default); default: LRA_MALLOC=default",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds over the models (median reported)"
    )
    args = parser.parse_args()
    repo = args.repo.resolve()
    models = (
        sorted(p.stem for p in (repo / "conf" / "model").glob("*.yaml"))
        if args.models == "all"
        else [m.strip() for m in args.models.split(",") if m.strip()]
    )
    header = (
        f"mini {args.task} training steps/s, {args.steps} steps, {args.threads} threads, "
        f"median of {args.repeats} interleaved round(s), "
        f"malloc {args.malloc}, "
        f"commit {commit_of(repo)}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print(header)
    samples: dict[str, list[dict]] = {model: [] for model in models}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.repeats):
            for model in models:
                results = Path(scratch) / f"round{round_index}"
                row = measure(
                    repo, model, args.task, args.steps, args.threads, results, args.malloc
                )
                samples[model].append(row)
                print(json.dumps({"round": round_index, **row}), flush=True)
    rows = summarize(samples)
    print(
        "\n| model | steps/s (median) | vs transformer | rounds | wall s |\n|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['model']} | {row.get('steps_per_second', row['status'])} | "
            f"{row.get('vs_transformer', '-')} | {row.get('rounds', '-')} | {row['wall_s']} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fields = [
            "model",
            "status",
            "steps_per_second",
            "vs_transformer",
            "rounds",
            "wall_s",
            "threads",
            "malloc",
            "kernel_backends",
            "error",
        ]
        with open(args.out, "w", newline="") as handle:
            handle.write(f"# {header}\n")
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
