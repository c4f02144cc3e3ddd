"""leaderboard.md: the leaderboard for reading. Per profile and protocol, the papers' view (a
model per line, a column per task, the averages, published averages beside ours); then every row
of the CSV, ranked within each task; then what the columns mean.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lra_bench.leaderboard_compare import ordered_tasks, wide_summary
from lra_bench.leaderboard_schema import BUDGET
from lra_bench.published.accuracy import FAIL


def number(value, digits: int = 2, sign: bool = False) -> str:
    """A number for a table cell; '-' for a missing one."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return str(value)


def accuracy(mean, std, seeds) -> str:
    """'38.05 ± 0.41' over several seeds, '38.05' over one, '-' over none."""
    if seeds is pd.NA or not seeds or mean != mean:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if seeds > 1 else f"{mean:.2f}"


def budget(ratio, over) -> str:
    """'1.04x', or '1.32x OVER' past the LRA parameter budget."""
    if ratio != ratio:
        return "-"
    return f"{ratio:.2f}x{' OVER' if over is True else ''}"


def published(value, source) -> str:
    """The published accuracy; 'FAIL' where the paper printed FAIL (no better than chance)."""
    if value == value or not isinstance(source, str):
        return number(value)
    return "FAIL" if FAIL in source else "-"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def summary_section(table: pd.DataFrame, profile: str, protocol: str) -> list[str]:
    wide = wide_summary(table, profile, protocol)
    tasks = ordered_tasks(table[(table.profile == profile) & (table.protocol == protocol)].task)
    tasks = [t for t in tasks if t in wide.columns]
    show_published = profile == "lra"
    headers = ["rank", "model", *tasks, "avg5", "avg6"]
    if show_published:
        headers += ["published avg5", "published avg6"]
    headers.append("params vs Transformer")
    rows = []
    for rank, (model, line) in enumerate(wide.iterrows(), start=1):
        cells = [str(rank), model, *[number(line[t]) for t in tasks]]
        cells += [number(line.avg5), number(line.avg6)]
        if show_published:
            cells += [number(line.published_avg5), number(line.published_avg6)]
        ratio = line.params_vs_transformer
        cells.append(budget(ratio, bool(ratio > BUDGET) if ratio == ratio else None))
        rows.append(cells)
    return [
        f"## Profile `{profile}`, protocol `{protocol}`",
        "",
        "Test accuracy (%) of each model's selected variant per task; avg5 / avg6 only where "
        "every task they need is there.",
        "",
        *_table(headers, rows),
        "",
    ]


def rows_section(table: pd.DataFrame) -> list[str]:
    headers = [
        "task",
        "model",
        "profile",
        "protocol",
        "test acc (%)",
        "seeds",
        "failed",
        "majority",
        "chance",
        "published",
        "ours - published",
        "avg5",
        "avg6",
        "parameters",
        "vs Transformer",
        "variant",
    ]
    order = {task: i for i, task in enumerate(ordered_tasks(table.task))}
    ranked = table.assign(_task=table.task.map(order))
    ranked = ranked.sort_values(
        ["profile", "protocol", "_task", "test_acc_mean"],
        ascending=[True, True, True, False],
        na_position="last",
    )
    rows = [
        [
            r.task,
            r.model,
            r.profile,
            r.protocol,
            accuracy(r.test_acc_mean, r.test_acc_std, r.seeds),
            str(r.seeds),
            str(r.failed),
            number(r.majority_rate),
            number(r.chance_rate),
            published(r.published_acc, r.published_source),
            number(r.diff_vs_published, sign=True),
            number(r.avg5),
            number(r.avg6),
            number(r.parameters),
            budget(r.params_vs_transformer, r.over_budget),
            r.variant + ("" if r.selected else " (not selected)"),
        ]
        for r in ranked.itertuples()
    ]
    return ["## Every row", "", *_table(headers, rows), ""]


NOTES = (
    "Accuracies in %, mean ± sample std over the seeds with status ok; `failed` counts runs that "
    "failed, diverged or ran out of memory. `majority` is the accuracy of always guessing the "
    "most frequent test label, `chance` that of guessing uniformly. Profiles and protocols never "
    "mix in a row or an average. Where a model has several variants of a task, the one with the "
    "best validation accuracy is selected for the averages and the parameter budget. Published "
    "numbers (lra_bench/published/lra_accuracy.csv) sit beside `lra`-profile rows only: `mini` "
    "is another experiment. `vs Transformer`: parameters over the Transformer's on the same "
    f"task, profile and protocol; OVER past {BUDGET:.2f}x (LRA's budget). Every column: "
    "leaderboard.csv and lra_bench/leaderboard_schema.py."
)


def to_markdown(
    table: pd.DataFrame, header: list[str] | None = None, plots: dict | None = None
) -> str:
    """The whole leaderboard.md. `header`: the CSV's header lines; `plots`: {(profile,
    protocol): path relative to the markdown file}."""
    parts = ["# lra-bench leaderboard", ""]
    parts += [f"- {line}" for line in header or []] + [""]
    if table.empty:
        return "\n".join([*parts, "No run records.", ""])
    groups = table[["profile", "protocol"]].drop_duplicates().sort_values(["profile", "protocol"])
    for profile, protocol in groups.itertuples(index=False):
        parts += summary_section(table, profile, protocol)
        path = (plots or {}).get((profile, protocol))
        if path is not None:
            parts += [f"![leaderboard, {profile}, {protocol}]({Path(path).as_posix()})", ""]
    parts += rows_section(table)
    parts += [NOTES, ""]
    return "\n".join(parts)
