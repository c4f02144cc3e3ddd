"""The leaderboard: every run record under a directory, aggregated per (task, model, profile,
protocol, variant), written as leaderboard.csv (the published artifact: the columns of
lra_bench/leaderboard_schema.py after `# ` header lines naming the commit and the machines),
leaderboard.md, leaderboard.html and plots/.

Accuracy columns are percentages. Profiles are part of the key, so results of different profiles
never share a row; so is the protocol (from scratch, or self-pretrained first), and so is the
variant (the config hash without the seed), so runs with different settings are never averaged
together as if they were seeds. Runs whose status is not `ok` count in `failed` and nowhere else.

The protocol of a record is its `protocol` field (`scratch` in records made before it existed).
Self-pretraining records (stage `pretrain`) are not rows: the fine-tuning runs stand for them.

A leaderboard of a results folder R reads the records of that result set only
(`R/runs/<task>/<model>/<profile>/<run>/record.json`, lra_bench/records.py `find_records`), each
run identity once; a record that fails the schema is skipped and listed, never counted and never
an error. The files are written under a lock (`R/.leaderboard.lock`) that also covers reading
the records, so that of two concurrent refreshes the later one sees every record the earlier
one saw, and no table is older than the records on disk when its refresh began.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from lra_bench.leaderboard_compare import (
    averages,
    mark_selected,
    parameter_budget,
    published_beside,
)
from lra_bench.leaderboard_schema import COLUMNS, KEY, SCHEMA_VERSION
from lra_bench.published.accuracy import CLASSES, SCRATCH
from lra_bench.records import PRETRAIN, RunRecord, find_records
from tasks.files import replaced_atomically


def record_protocol(record: RunRecord) -> str:
    """The training protocol a record followed: `scratch`, `spt-masked` or `spt-causal`
    (self-pretraining, lra_bench/pretraining.py): its `protocol` field, `scratch` in every
    record made before the field existed."""
    return record.protocol


LOCK_NAME = ".leaderboard.lock"
LOCK_TIMEOUT_SECONDS = 600.0


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
    """One row per supervised run of the result set `results_dir`; the records left out, one
    line each, are in `attrs["skipped"]`. Self-pretraining records (stage 'pretrain') are no
    accuracy rows: the fine-tuning runs that start from them stand for them."""
    rows = []
    records, skipped = read_records(results_dir)
    for path, record in records:
        if record.stage == PRETRAIN:
            continue
        rows.append(
            {
                "task": record.task,
                "model": record.model,
                "profile": record.profile,
                "protocol": record_protocol(record),
                "variant": record.variant,
                "seed": record.seed,
                "status": record.status,
                "test_accuracy": record.test_accuracy,
                "val_accuracy": record.val_accuracy,
                "majority_rate": record.test_majority_rate,
                "parameters": record.parameters,
                "steps_per_second": record.steps_per_second,
                "validation_is_test": record.validation_is_test,
                "git_commit": record.git_commit,
                "git_dirty": record.git_dirty,
                "device_name": record.environment.get("device_name"),
                "path": str(path),
            }
        )
    runs = pd.DataFrame(rows)
    runs.attrs["skipped"] = skipped
    return runs


def _mean(values: pd.Series, scale: float = 1.0) -> float:
    values = values.dropna().astype(float)
    return float(values.mean()) * scale if len(values) else float("nan")


def _distinct(values, separator: str = " ") -> str | None:
    """The distinct non-empty values, sorted and joined (None when there are none)."""
    found = sorted({str(v) for v in values if isinstance(v, str) and v})
    return separator.join(found) or None


DEVICE_SEPARATOR = "; "  # device names hold spaces ("AMD EPYC")


def _commits(group: pd.DataFrame) -> str | None:
    return _distinct(
        f"{commit[:12]}{'+dirty' if dirty is True else ''}"
        for commit, dirty in zip(group.git_commit, group.git_dirty)
        if isinstance(commit, str)
    )


def _row(key: tuple, group: pd.DataFrame) -> dict:
    """The per-key statistics of one group of runs."""
    ok = group[group.status == "ok"]
    test = ok.test_accuracy.astype(float) * 100
    mean = _mean(test)
    majority = _mean(group.majority_rate, 100)
    classes = CLASSES.get(key[0])
    return {
        **dict(zip(KEY, key)),
        "test_acc_mean": mean,
        "test_acc_std": float(test.std(ddof=1)) if len(ok) > 1 else float("nan"),
        "seeds": len(ok),
        "failed": len(group) - len(ok),
        "val_acc_mean": _mean(ok.val_accuracy, 100),
        "majority_rate": majority,
        "chance_rate": 100.0 / classes if classes else float("nan"),
        "above_majority": mean - majority,
        "parameters": group.parameters.dropna().max() if group.parameters.notna().any() else None,
        "steps_per_second": _mean(ok.steps_per_second),
        "validation_is_test": bool(group.validation_is_test.any()),
        "git_commits": _commits(group),
        "devices": _distinct(group.device_name, DEVICE_SEPARATOR),
    }


def aggregate(runs: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """The leaderboard: one row per KEY with the columns of `COLUMNS`, sorted by KEY.
    `published`: the papers' numbers (default lra_bench/published/lra_accuracy.csv)."""
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs.copy()
    if "protocol" not in runs:  # rows built before protocols existed
        runs["protocol"] = SCRATCH
    for column in ("git_commit", "git_dirty", "device_name"):
        if column not in runs:
            runs[column] = None
    table = pd.DataFrame(
        [_row(key, group) for key, group in runs.groupby(KEY, sort=True, dropna=False)]
    )
    table["selected"] = mark_selected(table)
    table = table.join(averages(table))
    table = table.join(published_beside(table, published))
    table = table.join(parameter_budget(table))
    for column in ("seeds", "failed", "parameters"):
        table[column] = table[column].astype("Int64")
    return table[COLUMNS].reset_index(drop=True)


def _fmt(value, digits: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
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
    protocol = getattr(row, "protocol", SCRATCH)
    where = f"{row.profile}" if protocol == SCRATCH else f"{row.profile}, {protocol}"
    if not row.seeds:  # every run of the row failed: no accuracy to state
        return f"{row.task} | {row.model} | {where} | {row.variant}: no run ok, {row.failed} failed"
    line = (
        f"{row.task} | {row.model} | {where} | {row.variant}: test accuracy "
        f"{_fmt(row.test_acc_mean)}%{std} over {row.seeds} seed(s), {row.failed} failed; "
        f"majority class {_fmt(row.majority_rate)}% ({side})"
    )
    published = getattr(row, "published_acc", float("nan"))
    if published == published:  # a published number to set beside ours
        line += f"; published {published:.2f}% ({row.diff_vs_published:+.2f})"
    ratio = getattr(row, "params_vs_transformer", float("nan"))
    if ratio == ratio and row.model != "transformer":
        over = " OVER the 10% budget" if row.over_budget else ""
        line += f"; {ratio:.2f}x the Transformer's parameters{over}"
    return line


def _clean(text: str) -> str:
    """One header line: no newline, and no '#' (which read_csv(comment='#') would cut at)."""
    return " ".join(str(text).replace("#", "No.").split())


def header_lines(table: pd.DataFrame, results_dir: Path, records: int) -> list[str]:
    """What the CSV's `# ` lines say: the schema, the commit and machine that wrote the file,
    and the commits and devices of the runs in it."""
    from lra_bench.environment import cpu_name, git_state

    git = git_state()
    commit = git["commit"] or "unknown"
    if git["dirty"]:
        commit += " (uncommitted changes)"
    commits = _distinct(" ".join(table.git_commits.dropna()).split()) or "unknown"
    devices = {d for text in table.devices.dropna() for d in text.split(DEVICE_SEPARATOR)}
    return [
        f"lra-bench leaderboard, schema {SCHEMA_VERSION}: the columns are documented in "
        "lra_bench/leaderboard_schema.py and the README (Leaderboard columns); accuracies in %",
        f"written {time.strftime('%Y-%m-%d %H:%M %Z')} at git {commit} on {cpu_name()} "
        f"({os.cpu_count()} cores), from {records} run records under {Path(results_dir).name}/",
        f"the runs: git {commits}; devices: {', '.join(sorted(devices)) or 'unknown'}",
        "published numbers (lra profile only): lra_bench/published/lra_accuracy.csv",
    ]


def to_csv_text(table: pd.DataFrame, header: list[str]) -> str:
    """The CSV file: `# ` header lines, then the table (read it with `read_leaderboard`)."""
    lines = "".join(f"# {_clean(line)}\n" for line in header)
    return lines + table.to_csv(index=False, float_format="%.4f")


def read_leaderboard(path: Path) -> pd.DataFrame:
    """A leaderboard.csv, its `# ` header skipped."""
    return pd.read_csv(path, comment="#")


def _write_text(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


def write_leaderboard(results_dir: Path, plot: bool = True) -> pd.DataFrame:
    """Writes results_dir/leaderboard.csv, leaderboard.md, leaderboard.html and
    plots/leaderboard_<profile>[_<protocol>].png from the records read under the same lock;
    returns the table, with the records left out (one line each) in `attrs["skipped"]`."""
    from lra_bench.leaderboard_html import to_html
    from lra_bench.leaderboard_markdown import to_markdown

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
        header = header_lines(table, results_dir, len(runs))
        _write_text(results_dir / "leaderboard.csv", to_csv_text(table, header))
        plots = {}
        if plot and not table.empty:
            from lra_bench.plots import plot_leaderboard

            plots = plot_leaderboard(table, results_dir / "plots")
        relative = {key: path.relative_to(results_dir) for key, path in plots.items()}
        _write_text(results_dir / "leaderboard.md", to_markdown(table, header, relative))
        _write_text(results_dir / "leaderboard.html", to_html(table, header, relative))
    finally:
        lock.release()
    table.attrs["skipped"] = runs.attrs["skipped"]
    return table
