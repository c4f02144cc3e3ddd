"""Plots drawn from the CSVs (never from live training state)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_leaderboard(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One grouped bar chart per profile: test accuracy per task (groups) and model (bars),
    error bars = std over seeds, a black tick at each task's majority-class rate."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for profile, rows in table.groupby("profile"):
        tasks = sorted(rows.task.unique())
        models = sorted(rows.model.unique())
        width = 0.8 / len(models)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(tasks) + 0.4 * len(models)), 4.2))
        for i, model in enumerate(models):
            sub = rows[rows.model == model].set_index("task").reindex(tasks)
            x = np.arange(len(tasks)) + (i - (len(models) - 1) / 2) * width
            ax.bar(
                x, sub.test_acc_mean, width, yerr=sub.test_acc_std.fillna(0), label=model, capsize=3
            )
        majority = rows.groupby("task").majority_rate.mean().reindex(tasks)
        ax.scatter(
            np.arange(len(tasks)),
            majority,
            marker="_",
            s=2000 * 0.8,
            color="black",
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
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
        fig.savefig(tmp, dpi=120)
        plt.close(fig)
        os.replace(tmp, path)
        written.append(path)
    return written
