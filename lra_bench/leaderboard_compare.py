"""The leaderboard columns that compare rows with one another or with the papers: which
variant stands for a (task, model, profile, protocol), the 5- and 6-task averages, the parameter
budget against the Transformer, and the published number beside ours.

Every comparison stays inside one profile and one protocol: a self-pretrained run is never
averaged with, or budgeted against, a from-scratch one.
"""

from __future__ import annotations

import pandas as pd

from lra_bench.leaderboard_schema import BUDGET
from lra_bench.published.accuracy import FAIL, TASKS5, TASKS6, read_published_accuracy

BASELINE = "transformer"
GROUP = ["model", "profile", "protocol"]  # a model's rows that an average spans


def mark_selected(table: pd.DataFrame) -> pd.Series:
    """True on the one row per (task, model, profile, protocol) that stands for it: the variant
    with the best validation accuracy (model selection never looks at test), then the most
    seeds, then the variant name (so that the choice is repeatable)."""
    ranked = table[table.seeds > 0].sort_values(
        ["val_acc_mean", "seeds", "variant"], ascending=[False, False, True], na_position="last"
    )
    chosen = ranked.drop_duplicates(["task", *GROUP]).index
    return pd.Series(table.index.isin(chosen), index=table.index)


def averages(table: pd.DataFrame) -> pd.DataFrame:
    """avg5 and avg6 on each selected row: the mean of its model's selected test accuracies
    over LRA's five tasks (six with Path-X), NaN unless every task the average needs has one."""
    out = pd.DataFrame({"avg5": float("nan"), "avg6": float("nan")}, index=table.index)
    selected = table[table.selected & table.test_acc_mean.notna()]
    for _, rows in selected.groupby(GROUP):
        by_task = rows.set_index("task").test_acc_mean
        for column, tasks in (("avg5", TASKS5), ("avg6", TASKS6)):
            if all(task in by_task.index for task in tasks):
                out.loc[rows.index, column] = by_task.loc[list(tasks)].mean()
    return out


def parameter_budget(table: pd.DataFrame) -> pd.DataFrame:
    """params_vs_transformer (parameters over those of the Transformer's selected row with the
    same task, profile and protocol) and over_budget (ratio > BUDGET; NaN without a ratio)."""
    base = table[(table.model == BASELINE) & table.selected & table.parameters.notna()]
    reference = base.set_index(["task", "profile", "protocol"]).parameters.astype(float)
    keys = list(zip(table.task, table.profile, table.protocol))
    denominator = pd.Series([reference.get(k, float("nan")) for k in keys], index=table.index)
    ratio = table.parameters.astype(float) / denominator
    over = pd.Series(
        [bool(r > BUDGET) if r == r else None for r in ratio], index=table.index, dtype=object
    )
    return pd.DataFrame({"params_vs_transformer": ratio, "over_budget": over})


def published_beside(table: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published accuracy, our difference from it, the published averages and their source,
    for every `lra`-profile row of a model and protocol that a paper reports (the `mini` and
    `smoke` profiles are other experiments: nothing published sits beside them)."""
    if published is None:
        published = read_published_accuracy()
    columns = ["published_acc", "diff_vs_published", "published_avg5", "published_avg6"]
    out = pd.DataFrame(float("nan"), index=table.index, columns=columns)
    out["published_source"] = None
    entries = published.set_index(["model", "protocol", "task"])
    for index, row in table[table.profile == "lra"].iterrows():
        key = (row.model, row.protocol, row.task)
        if key not in entries.index:
            continue
        entry = entries.loc[key]
        out.loc[index, "published_acc"] = entry.accuracy
        out.loc[index, "diff_vs_published"] = row.test_acc_mean - entry.accuracy
        out.loc[index, "published_avg5"] = entry.avg5
        out.loc[index, "published_avg6"] = entry.avg6
        note = f" ({row.task}: {FAIL}, no better than chance)" if entry.failed else ""
        out.loc[index, "published_source"] = f"{entry.source}{note}"
    return out


def ordered_tasks(tasks) -> list[str]:
    """LRA's task order (ListOps .. Path-X), then any other task alphabetically."""
    tasks = set(tasks)
    return [t for t in TASKS6 if t in tasks] + sorted(tasks - set(TASKS6))


def wide_summary(table: pd.DataFrame, profile: str, protocol: str) -> pd.DataFrame:
    """The papers' view of one profile and protocol: one row per model (its selected rows),
    a test-accuracy column per task, avg5, avg6, the published averages and the largest
    params_vs_transformer over its tasks; ranked by avg6, then avg5, then the mean over the
    tasks it has. Index: model."""
    rows = table[(table.profile == profile) & (table.protocol == protocol) & table.selected]
    tasks = ordered_tasks(rows.task)
    wide = rows.pivot(index="model", columns="task", values="test_acc_mean").reindex(columns=tasks)
    per_model = rows.groupby("model")
    for column in ("avg5", "avg6", "published_avg5", "published_avg6"):
        wide[column] = per_model[column].max()
    wide["params_vs_transformer"] = per_model.params_vs_transformer.max()
    wide["_mean"] = wide[tasks].mean(axis=1)
    wide = wide.sort_values(["avg6", "avg5", "_mean"], ascending=False, na_position="last")
    return wide.drop(columns="_mean")
