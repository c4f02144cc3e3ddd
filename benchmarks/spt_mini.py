"""Self-pretraining at small scale (issue 14): does SPT narrow the Transformer-SSM gap on the
`mini` profile? Runs (or finds finished) every cell of the grid, then writes the table.

    .venv/bin/python benchmarks/spt_mini.py [--tasks listops,pathfinder]
        [--models transformer,s4d,mamba] [--seeds 0,1,2] [--results results/spt_mini]
        [--cells scratch,masked-tied,...]  # a part of the grid (default: all five)
        [--set KEY=VALUE ...]   # an override for every run (e.g. smaller budgets for a check)
        [--jobs 1] [--threads N]  # runs at once, torch threads each (default: cores / jobs)
        [--dry-run]             # print the commands, run nothing
        [--table-only]          # write the table from the records already there

For each task, model and seed, five supervised runs:

    scratch         the mini budget from scratch (S steps: ListOps 2000, Pathfinder 1000)
    masked-tied     masked SPT for P steps, then fine-tuning for S - P: the compute-tied study
    causal-tied     the same with causal SPT (next-element prediction, a causal model)
    masked-added    masked SPT for P steps, then the full S steps of fine-tuning
    causal-added    the same with causal SPT

P is the profile's pretraining budget (conf/pretrain_profile/<task>/mini.yaml: S / 2), so the
tied runs split the scratch budget half and half, and the added runs show SPT on top of it. The
tied and added runs of one seed share one pretraining run (its identity leaves out the
fine-tuning budget); `pretrain.seed=null` gives every seed its own pretraining, so the spread
over seeds includes the pretraining's. Each command is `python -m lra_bench.run` (a finished run
is skipped, an interrupted one resumes), one after another by default: on 2 CPU cores one run
uses both. `--jobs 2 --threads 1` runs two at once, one core each, which gets more runs through
two cores when the models are this small; the grid then goes cell by cell (every scratch run,
then every masked-tied run, ...), so that an `added` run finds the pretraining that its `tied`
run trained (a run that needs a pretraining another process is training waits on its lock).

Writes <results>/spt_table.md (accuracy mean +- std over seeds, the SSM-minus-Transformer gap per
protocol, the pretraining metric, wall times) and <results>/spt_runs.csv (one line per run).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lra_bench.compose import compose  # noqa: E402
from lra_bench.environment import cpu_name, git_state  # noqa: E402
from lra_bench.identity import run_dir_for  # noqa: E402
from lra_bench.records import RECORD_NAME, RunRecord  # noqa: E402

CELLS = ("scratch", "masked-tied", "causal-tied", "masked-added", "causal-added")
TRANSFORMER = "transformer"


def overrides_of(task, model, seed, cell, results, extra) -> list[str]:
    """The Hydra overrides of one run of the grid."""
    base = [
        f"task={task}",
        f"model={model}",
        "profile=mini",
        f"seed={seed}",
        f"results_dir={results}",
        "progress=false",
        *extra,
    ]
    if cell == "scratch":
        return base
    objective, budget = cell.split("-")
    spt = [*base, f"pretrain={objective}", "pretrain.seed=null"]
    if budget == "added":
        return spt
    cfg = compose(spt)
    tied = int(cfg.trainer.max_steps) - int(cfg.pretrain.trainer.max_steps)
    if tied < 1:
        raise SystemExit(f"{task}: the pretraining budget leaves no fine-tuning steps")
    return [*spt, f"trainer.max_steps={tied}"]


def run_one(overrides: list[str], dry_run: bool, threads: int | None = None) -> str:
    """Runs one grid command; returns what to print (the command, then the run's summary)."""
    command = [sys.executable, "-m", "lra_bench.run", *overrides]
    shown = "$ " + " ".join(command[1:])
    if dry_run:
        return shown
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)  # the runner's torch threads (lra_bench.run)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("this run", "pretrain"))]
    out = [shown, "\n".join(f"  {line}" for line in lines) or f"  exit {done.returncode}"]
    if done.returncode != 0:
        out.append("  " + "\n  ".join(done.stderr.strip().splitlines()[-3:]))
    return "\n".join(out)


def run_grid(commands: list[list[str]], dry_run: bool, jobs: int, threads: int | None) -> None:
    """Every command, `jobs` at a time; each one's lines printed together when it ends."""
    if jobs <= 1 or dry_run:
        for overrides in commands:
            print(run_one(overrides, dry_run, threads), flush=True)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, overrides, dry_run, threads) for overrides in commands]
        for future in as_completed(futures):
            print(future.result(), flush=True)


def pretraining_record(finetune_record: Path, run_dir: str) -> Path:
    """The record of the pretraining a fine-tuning run names: at the directory it names, or,
    where the results were moved since (a worktree's results copied into the repository), the
    directory of that name beside the fine-tuning run, where the runner puts it."""
    named = Path(run_dir) / RECORD_NAME
    if named.exists():
        return named
    beside = finetune_record.parent.parent / Path(run_dir).name / RECORD_NAME
    if beside.exists():
        return beside
    raise FileNotFoundError(
        f"{finetune_record}: its pretraining {run_dir} is neither there nor beside it"
    )


def collect(task, model, seed, cell, results, extra) -> dict | None:
    """One run's line of spt_runs.csv, or None when it has no record yet."""
    cfg = compose(overrides_of(task, model, seed, cell, results, extra))
    path = run_dir_for(cfg) / RECORD_NAME
    if not path.exists():
        return None
    record = RunRecord.read(path)
    row = {
        "task": task,
        "model": model,
        "cell": cell,
        "seed": seed,
        "status": record.status,
        "test_accuracy": record.test_accuracy,
        "finetune_steps": record.steps,
        "finetune_wall_s": record.wall_seconds,
        "pretrain_metric": None,
        "pretrain_value": None,
        "pretrain_steps": 0,
        "pretrain_wall_s": 0.0,
        "pretrain_run": None,
        "git_commit": (record.git_commit or "unknown")[:7],
    }
    if record.pretrained_from:
        pre = RunRecord.read(pretraining_record(path, record.pretrained_from["run_dir"]))
        row.update(
            pretrain_metric=pre.metric,
            pretrain_value=pre.best_val_metric,
            pretrain_steps=pre.steps,
            pretrain_wall_s=pre.wall_seconds,
            pretrain_run=pre.config_hash,
        )
    return row


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{mean:.1f}{spread} ({len(values)})"


def _accuracies(rows, task, model, cell) -> list[float]:
    return [
        100 * r["test_accuracy"]
        for r in rows
        if (r["task"], r["model"], r["cell"]) == (task, model, cell) and r["status"] == "ok"
    ]


def table(rows: list[dict], tasks, models) -> str:
    """The Markdown of spt_table.md."""
    git = git_state()
    commits = {}
    for row in rows:
        commits.setdefault(row["model"], set()).add(row["git_commit"])
    runs_at = "; ".join(f"{m} at {', '.join(sorted(c))}" for m, c in sorted(commits.items()))
    lines = [
        "# Self-pretraining at the mini profile (benchmarks/spt_mini.py)",
        "",
        f"Machine: {cpu_name()} ({os.cpu_count()} cores); runs: {runs_at} (each record's"
        f" git_commit); table written at git {git['commit'][:7] if git['commit'] else 'unknown'}"
        f"{' (uncommitted changes)' if git['dirty'] else ''}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        "Test accuracy (%), mean ± std over seeds (count). tied: pretraining + fine-tuning = "
        "the scratch budget, half each; added: pretraining on top of the full fine-tuning "
        "budget. causal: next-element pretraining, and the model causal in both stages.",
    ]
    for task in tasks:
        lines += ["", f"## {task}", "", "| model | " + " | ".join(CELLS) + " |"]
        lines.append("|---" * (len(CELLS) + 1) + "|")
        for model in models:
            cells = [_mean_std(_accuracies(rows, task, model, c)) for c in CELLS]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        for model in models:
            if model == TRANSFORMER:
                continue
            gaps = []
            for cell in CELLS:
                ssm, ours = (_accuracies(rows, task, m, cell) for m in (model, TRANSFORMER))
                gaps.append(
                    f"{statistics.mean(ssm) - statistics.mean(ours):+.1f}" if ssm and ours else "-"
                )
            lines.append(f"| gap {model} - transformer | " + " | ".join(gaps) + " |")
        lines += ["", "Pretraining: best validation metric (mean over seeds) and steps", ""]
        lines += ["| model | masked | causal |", "|---|---|---|"]
        for model in models:
            parts = []
            for objective in ("masked", "causal"):
                found = {
                    r["pretrain_run"]: r
                    for r in rows
                    if (r["task"], r["model"]) == (task, model)
                    and r["cell"].startswith(objective)
                    and r["pretrain_run"]
                }
                values = [r["pretrain_value"] for r in found.values()]
                if not values:
                    parts.append("-")
                    continue
                metric = next(iter(found.values()))["pretrain_metric"]
                steps = next(iter(found.values()))["pretrain_steps"]
                mean = statistics.mean(values)
                shown = f"{mean:.3f}" if metric.endswith("r2") else f"{100 * mean:.1f}%"
                parts.append(f"{metric} {shown} ({len(values)} runs, {steps} steps)")
            lines.append(f"| {model} | " + " | ".join(parts) + " |")
        lines += ["", "Wall time per run (minutes, mean over seeds): pretraining + fine-tuning", ""]
        lines += ["| model | " + " | ".join(CELLS) + " |", "|---" * (len(CELLS) + 1) + "|"]
        for model in models:
            cells = []
            for cell in CELLS:
                chosen = [
                    r for r in rows if (r["task"], r["model"], r["cell"]) == (task, model, cell)
                ]
                if not chosen:
                    cells.append("-")
                    continue
                pre = statistics.mean(r["pretrain_wall_s"] for r in chosen) / 60
                fine = statistics.mean(r["finetune_wall_s"] or math.nan for r in chosen) / 60
                cells.append(f"{pre:.1f} + {fine:.1f}" if pre else f"{fine:.1f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="listops,pathfinder")
    parser.add_argument("--models", default="transformer,s4d,mamba")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--cells", default=",".join(CELLS), help=f"which of {', '.join(CELLS)} to run"
    )
    parser.add_argument("--results", default="results/spt_mini")
    parser.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)"
    )
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    tasks, models = args.tasks.split(","), args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = Path(args.results)
    cells = args.cells.split(",")
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        parser.error(f"--cells: unknown {', '.join(unknown)}; choose from {', '.join(CELLS)}")
    if args.jobs < 1:
        parser.error("--jobs: at least 1")
    grid = [(t, m, s, c) for t in tasks for m in models for s in seeds for c in cells]
    if not args.table_only:
        order = grid if args.jobs == 1 else sorted(grid, key=lambda g: cells.index(g[3]))
        threads = args.threads or (
            max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
        )
        commands = [overrides_of(t, m, s, c, results, args.extra) for t, m, s, c in order]
        run_grid(commands, args.dry_run, args.jobs, threads)
    if args.dry_run:
        return
    rows = [r for r in (collect(*cell, results, args.extra) for cell in grid) if r]
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "spt_runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["task"])
        writer.writeheader()
        writer.writerows(rows)
    text = table(rows, tasks, models)
    (results / "spt_table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
