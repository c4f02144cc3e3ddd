"""One line per run record of a result set: what ran, how it ended, how long it took, on which
commit and how many threads. The leaderboard aggregates over seeds; this table keeps each run
(the wall time of every run is what a user plans a sweep by). Written by `lra-bench records
list DIR` as `runs.csv` and `runs.md` beside the leaderboard."""

from __future__ import annotations

import csv
from pathlib import Path

from lra_bench.identity import NON_IDENTIFYING_KEYS
from lra_bench.records import RunRecord, find_records

COLUMNS = (
    "task",
    "model",
    "profile",
    "protocol",
    "stage",
    "seed",
    "status",
    "test_accuracy",
    "best_step",
    "steps",
    "steps_per_second",
    "wall_minutes",
    "threads",
    "malloc",
    "git_commit",
    "git_dirty",
    "variant",
    "settings",
)

# Overrides the table shows in columns of their own, or that never change what is computed.
_SHOWN_ELSEWHERE = {"task", "model", "profile", "seed"}


def settings(overrides: list[str]) -> str:
    """The command-line overrides that set something beyond the task, model, profile and seed
    columns (`trainer.max_steps=3000`, `pretrain=masked`, `+model.backbone.encoder=linear`), in
    the order given; where-and-how keys (results_dir, progress, kernels, ...) left out. What
    tells apart two runs of one task, model and profile at a glance; the variant hash is the
    exact identity."""

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    return " ".join(
        override
        for override in overrides
        if key(override) not in _SHOWN_ELSEWHERE
        and key(override).split(".", 1)[0] not in NON_IDENTIFYING_KEYS
    )


def run_row(record: RunRecord) -> dict:
    """The table's line for one record (accuracy in %, wall time in minutes, commit shortened)."""

    def rounded(value, digits, scale=1.0):
        return None if value is None else round(value * scale, digits)

    return {
        "task": record.task,
        "model": record.model,
        "profile": record.profile,
        "protocol": record.protocol,
        "stage": record.stage,
        "seed": record.seed,
        "status": record.status,
        "test_accuracy": rounded(record.test_accuracy, 2, 100.0),
        "best_step": record.best_step,
        "steps": record.steps,
        "steps_per_second": rounded(record.steps_per_second, 3),
        "wall_minutes": rounded(record.wall_seconds, 1, 1 / 60),
        "threads": record.environment.get("threads"),
        "malloc": record.environment.get("malloc", "default"),
        "git_commit": (record.git_commit or "")[:7] or None,
        "git_dirty": record.git_dirty,
        "variant": record.variant,
        "settings": settings(record.overrides or []),
    }


def run_rows(results_dir: Path) -> list[dict]:
    """Every run of the result set, ordered by task, profile, protocol, model, stage, seed."""
    rows = [run_row(RunRecord.read(path)) for path in find_records(results_dir)]
    order = ("task", "profile", "protocol", "model", "stage", "seed")
    return sorted(rows, key=lambda row: tuple(str(row[key]) for key in order))


def write_run_table(results_dir: Path) -> tuple[Path, Path]:
    """runs.csv and runs.md in `results_dir`; returns their paths."""
    results_dir = Path(results_dir)
    rows = run_rows(results_dir)
    csv_path, md_path = results_dir / "runs.csv", results_dir / "runs.md"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    def blank(value) -> str:
        return "-" if value in (None, "") else str(value).replace("|", "\\|")

    lines = [
        f"# Runs of {results_dir.name}",
        "",
        f"{len(rows)} run records; test accuracy in %, wall time in minutes (set-up, training and"
        " evaluation), threads = torch threads of the run, settings = its overrides beyond task,"
        " model, profile and seed.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(blank(row[c]) for c in COLUMNS) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
