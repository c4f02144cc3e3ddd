"""Plots drawn from the CSVs (never from live training state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tasks.files import replaced_atomically


def plot_leaderboard(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One grouped bar chart per profile: test accuracy per task (groups) and model (bars),
    error bars = std over seeds, a black tick at each task's majority-class rate."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for profile, rows in table.groupby("profile"):
        tasks = sorted(rows.task.unique())
        # One bar series per (model, variant); the variant is named only where a model has several.
        series = sorted(set(zip(rows.model, rows.variant)))
        several = {m for m in rows.model.unique() if rows[rows.model == m].variant.nunique() > 1}
        width = 0.8 / len(series)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(tasks) + 0.4 * len(series)), 4.2))
        for i, (model, variant) in enumerate(series):
            sub = (
                rows[(rows.model == model) & (rows.variant == variant)]
                .set_index("task")
                .reindex(tasks)
            )
            x = np.arange(len(tasks)) + (i - (len(series) - 1) / 2) * width
            label = f"{model} ({variant})" if model in several else model
            ax.bar(
                x, sub.test_acc_mean, width, yerr=sub.test_acc_std.fillna(0), label=label, capsize=3
            )
        majority = rows.groupby("task").majority_rate.mean().reindex(tasks)
        centres = np.arange(len(tasks))
        ax.hlines(
            majority,
            centres - 0.45,
            centres + 0.45,
            colors="black",
            linestyles="dashed",
            label="majority class",
            zorder=3,
        )
        ax.set_xticks(np.arange(len(tasks)), tasks)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"lra-bench leaderboard, profile '{profile}'")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = out_dir / f"leaderboard_{profile}.png"
        with replaced_atomically(path) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
