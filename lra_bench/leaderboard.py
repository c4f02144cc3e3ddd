"""The leaderboard: every run record under a directory, aggregated per (task, model, profile,
variant).

Accuracy columns are percentages. Profiles are part of the key, so results of different profiles
never share a row; so is the variant (the config hash without the seed), so runs with different
settings are never averaged together as if they were seeds. Runs whose status is not `ok` count
in `failed` and nowhere else.

A leaderboard of a results folder R reads the records of that result set only
(`R/runs/<task>/<model>/<profile>/<run>/record.json`, lra_bench/records.py `find_records`), each
run identity once; a record that fails the schema is skipped and listed, never counted and never
an error. The files are written under a lock (`R/.leaderboard.lock`) that also covers reading
the records, so that of two concurrent refreshes the later one sees every record the earlier
one saw, and no table is older than the records on disk when its refresh began.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from lra_bench.records import RunRecord, find_records
from tasks.files import replaced_atomically

LOCK_NAME = ".leaderboard.lock"
LOCK_TIMEOUT_SECONDS = 600.0

KEY = ["task", "model", "profile", "variant"]
COLUMNS = [
    *KEY,
    "test_acc_mean",
    "test_acc_std",
    "seeds",
    "failed",
    "val_acc_mean",
    "majority_rate",
    "above_majority",
    "parameters",
    "steps_per_second",
    "validation_is_test",
]


def read_records(results_dir: Path) -> tuple[list[tuple[Path, RunRecord]], list[str]]:
    """The valid records of the result set `results_dir`, one per run identity, and one line per
    record left out ("<path>: why"): unreadable, failing the schema, or a second copy of a run
    already counted (the ok one, else the later finished one, is kept)."""
    kept: dict[tuple, tuple[Path, RunRecord]] = {}
    skipped = []
    for path in find_records(results_dir):
        try:
            record = RunRecord.read(path)
        except ValueError as error:  # its message names the file
            skipped.append(str(error))
            continue
        except OSError as error:
            skipped.append(f"{path}: cannot be read ({error.strerror or error})")
            continue
        identity = (record.task, record.model, record.profile, record.seed, record.config_hash)
        if identity in kept:
            other_path, other = kept[identity]
            if _preference(record) > _preference(other):
                kept[identity] = (path, record)
                other_path, path = path, other_path
            skipped.append(f"{path}: the same run as {other_path}; counted once")
            continue
        kept[identity] = (path, record)
    return sorted(kept.values(), key=lambda item: str(item[0])), skipped


def _preference(record: RunRecord) -> tuple:
    return (record.status == "ok", record.finished_at or "")


def load_runs(results_dir: Path) -> pd.DataFrame:
    """One row per run of the result set `results_dir`; the records left out, one line each,
    are in `attrs["skipped"]`."""
    rows = []
    records, skipped = read_records(results_dir)
    for path, record in records:
        rows.append(
            {
                "task": record.task,
                "model": record.model,
                "profile": record.profile,
                "variant": record.variant,
                "seed": record.seed,
                "status": record.status,
                "test_accuracy": record.test_accuracy,
                "val_accuracy": record.val_accuracy,
                "majority_rate": record.test_majority_rate,
                "parameters": record.parameters,
                "steps_per_second": record.steps_per_second,
                "validation_is_test": record.validation_is_test,
                "path": str(path),
            }
        )
    runs = pd.DataFrame(rows)
    runs.attrs["skipped"] = skipped
    return runs


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and (sample) std of test accuracy over the ok seeds of each key."""
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    out = []
    for key, group in runs.groupby(KEY, sort=True):
        ok = group[group.status == "ok"]
        test = ok.test_accuracy.astype(float) * 100
        majority = group.majority_rate.dropna().astype(float) * 100
        mean = test.mean() if len(ok) else float("nan")
        out.append(
            {
                **dict(zip(KEY, key)),
                "test_acc_mean": mean,
                "test_acc_std": test.std(ddof=1) if len(ok) > 1 else float("nan"),
                "seeds": len(ok),
                "failed": len(group) - len(ok),
                "val_acc_mean": ok.val_accuracy.astype(float).mean() * 100
                if len(ok)
                else float("nan"),
                "majority_rate": majority.mean() if len(majority) else float("nan"),
                "above_majority": mean - majority.mean() if len(majority) else float("nan"),
                "parameters": group.parameters.dropna().max()
                if group.parameters.notna().any()
                else None,
                "steps_per_second": ok.steps_per_second.astype(float).mean()
                if len(ok)
                else float("nan"),
                "validation_is_test": bool(group.validation_is_test.any()),
            }
        )
    return pd.DataFrame(out, columns=COLUMNS)


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_row(row: pd.Series) -> str:
    """One human-readable line for a leaderboard row."""
    std = f" ± {_fmt(row.test_acc_std)}" if row.seeds > 1 else ""
    margin = row.above_majority
    if isinstance(margin, float) and margin == margin:  # not NaN
        side = f"{abs(margin):.1f} points {'above' if margin >= 0 else 'below'}"
    else:
        side = "- points above"
    return (
        f"{row.task} | {row.model} | {row.profile} | {row.variant}: test accuracy "
        f"{_fmt(row.test_acc_mean)}%{std} over {row.seeds} seed(s), {row.failed} failed; "
        f"majority class {_fmt(row.majority_rate)}% ({side})"
    )


def to_markdown(table: pd.DataFrame) -> str:
    headers = list(table.columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(row[h]) for h in headers) + " |")
    note = (
        "\nAccuracies in %, mean ± sample std over seeds with status ok; `failed` counts runs that "
        "failed, diverged or ran out of memory. `majority_rate` is the accuracy of always guessing "
        "the most frequent test label. Profiles never mix in a row.\n"
    )
    return "\n".join(lines) + "\n" + note


def _write_text(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


def write_leaderboard(results_dir: Path, plot: bool = True) -> pd.DataFrame:
    """Writes results_dir/leaderboard.csv, leaderboard.md and plots/leaderboard_<profile>.png
    from the records read under the same lock; returns the table, with the records left out
    (one line each) in `attrs["skipped"]`."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(results_dir / LOCK_NAME)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
    except Timeout:
        raise TimeoutError(
            f"{lock.lock_file}: another leaderboard refresh has held it for "
            f"{LOCK_TIMEOUT_SECONDS:.0f} s; the leaderboard was not refreshed"
        ) from None
    try:
        runs = load_runs(results_dir)
        table = aggregate(runs)
        _write_text(results_dir / "leaderboard.csv", table.to_csv(index=False, float_format="%.4f"))
        _write_text(results_dir / "leaderboard.md", to_markdown(table))
        if plot and not table.empty:
            from lra_bench.plots import plot_leaderboard

            plot_leaderboard(table, results_dir / "plots")
    finally:
        lock.release()
    table.attrs["skipped"] = runs.attrs["skipped"]
    return table
