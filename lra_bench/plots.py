"""The leaderboard's plots, drawn from its table (never from live training state): one figure
per profile and protocol, one panel per task (then the 5- and 6-task averages where any model
has them), each a ranked bar chart of test accuracy with the values written beside the bars.

A model keeps its colour across panels and plots (lra_bench/styles.py). Error bars only where
a row has several seeds; the axis spans the data (and the majority rate), not 0-100; models
whose runs all failed are listed as such; a panel without any result says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from lra_bench.leaderboard_compare import ordered_tasks  # noqa: E402
from lra_bench.published.accuracy import SCRATCH  # noqa: E402
from lra_bench.styles import model_styles  # noqa: E402
from tasks.files import replaced_atomically  # noqa: E402

BAR_HEIGHT_IN = 0.26  # inches per bar: model names at font size 8 never overlap
AVERAGES = {"avg5": "average over 5 tasks (no Path-X)", "avg6": "average over 6 tasks"}


def plot_name(profile: str, protocol: str) -> str:
    """leaderboard_<profile>.png from scratch, leaderboard_<profile>_<protocol>.png otherwise."""
    suffix = "" if protocol == SCRATCH else f"_{protocol}"
    return f"leaderboard_{profile}{suffix}.png"


def panel_rows(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """The bars of one panel: label, value, std (NaN for one seed), published, model, and
    `failed_only` rows (no value) listed last. `column` is a task or an average column."""
    if column in AVERAGES:
        chosen = rows[rows.selected & rows[column].notna()].drop_duplicates("model")
        bars = pd.DataFrame(
            {
                "model": chosen.model,
                "label": chosen.model,
                "value": chosen[column],
                "std": float("nan"),
                "published": chosen[f"published_{column}"],
                "failed": 0,
            }
        )
    else:
        task = rows[rows.task == column]
        several = task.model.duplicated(keep=False)  # a model with several variants here
        bars = pd.DataFrame(
            {
                "model": task.model,
                "label": [
                    f"{m} ({v[:6]})" if s else m
                    for m, v, s in zip(task.model, task.variant, several)
                ],
                "value": task.test_acc_mean,
                "std": task.test_acc_std.where(task.seeds > 1),
                "published": task.published_acc,
                "failed": task.failed,
            }
        )
    ok = bars[bars.value.notna()].sort_values(["value", "label"], ascending=[False, True])
    return pd.concat([ok, bars[bars.value.isna()].sort_values("label")], ignore_index=True)


def x_range(bars: pd.DataFrame) -> tuple[float, float]:
    """An axis that spans the bars (with their error bars) and the published marks, with a
    margin, within 0..100: the differences between models fill the panel. (The majority and
    chance rates are in the panel's title, and drawn where they fall inside.)"""
    values = bars.value.dropna()
    std = bars["std"].fillna(0)
    points = [
        *(values - std[values.index]),
        *(values + std[values.index]),
        *bars.published.dropna(),
    ]
    low, high = min(points), max(points)
    span = max(high - low, 1.0)
    # More room below than above, so that the lowest bar keeps a visible length.
    return max(0.0, low - 0.15 * span - 0.5), min(100.0, high + 0.05 * span + 0.5)


def draw_panel(ax, bars: pd.DataFrame, title: str, references: dict, styles: dict) -> set[str]:
    """Horizontal ranked bars (best on top), values in a column right of the axes. Returns
    what of the legend it drew (names of references, 'published', 'std')."""
    drawn = set()
    if bars.value.notna().sum() == 0:
        failed = int(bars.failed.sum())
        message = f"no data: all {failed} runs failed" if failed else "no data"
        ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        return drawn
    y = np.arange(len(bars))[::-1]  # first row on top
    low, high = x_range(bars)
    has_value = bars.value.notna().to_numpy()
    ax.barh(
        y[has_value],
        bars.value[has_value] - low,
        left=low,
        height=0.7,
        color=[styles[m]["color"] for m in bars.model[has_value]],
        edgecolor="black",
        linewidth=0.4,
    )
    several = bars["std"].notna().to_numpy()
    if several.any():
        ax.errorbar(
            bars.value[several],
            y[several],
            xerr=bars["std"][several],
            fmt="none",
            ecolor="black",
            capsize=3,
            linewidth=1,
        )
        drawn.add("std")
    published = bars.published.notna().to_numpy()
    if published.any():
        ax.scatter(
            bars.published[published],
            y[published],
            marker="D",
            s=30,
            facecolor="white",
            edgecolor="black",
            zorder=4,
        )
        drawn.add("published")
    for (name, value), style in zip(references.items(), (":", "--")):
        if value == value and low <= value <= high:
            ax.axvline(value, color="dimgrey", linestyle=style, linewidth=1, zorder=3)
            drawn.add(name)
    column = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, row in zip(y, bars.itertuples()):
        if row.value == row.value:
            text = f"{row.value:.2f}" + (f" ± {row.std:.2f}" if row.std == row.std else "")
            if row.published == row.published:
                text += f"  ({row.value - row.published:+.1f})"
        else:
            text = f"all {row.failed} runs failed"
        ax.text(1.02, yi, text, transform=column, va="center", ha="left", fontsize=8)
    ax.set_yticks(y, bars.label, fontsize=8)
    ax.set_ylim(-0.6, len(bars) - 0.4)
    ax.set_xlim(low, high)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    return drawn


def legend_handles(drawn: set[str]) -> list:
    """Legend entries for what the panels drew."""
    entries = {
        "majority": Line2D([], [], color="dimgrey", linestyle="--", label="majority class"),
        "chance": Line2D([], [], color="dimgrey", linestyle=":", label="chance (1 / classes)"),
        "published": Line2D(
            [],
            [],
            marker="D",
            color="black",
            markerfacecolor="white",
            linestyle="",
            label="published (our difference in brackets)",
        ),
        "std": Line2D([], [], color="black", label="± std over seeds"),
    }
    return [handle for name, handle in entries.items() if name in drawn]


def plot_group(rows: pd.DataFrame, profile: str, protocol: str, path: Path, styles) -> Path:
    """One figure: a panel per task and per available average."""
    panels = ordered_tasks(rows.task) + [c for c in AVERAGES if rows[c].notna().any()]
    columns = 1 if len(panels) == 1 else 2 if len(panels) <= 4 else 3
    lines = -(-len(panels) // columns)
    height = max(len(panel_rows(rows, p)) for p in panels) * BAR_HEIGHT_IN + 1.3
    fig, axes = plt.subplots(
        lines, columns, figsize=(6.2 * columns, height * lines + 0.8), squeeze=False
    )
    drawn: set[str] = set()
    for ax, panel in zip(axes.flat, panels):
        bars = panel_rows(rows, panel)
        if panel in AVERAGES:
            title, references = AVERAGES[panel], {}
        else:
            task = rows[rows.task == panel]
            majority, chance = task.majority_rate.mean(), task.chance_rate.mean()
            title = f"{panel} (majority {majority:.1f}%, chance {chance:.0f}%)"
            references = {"chance": chance, "majority": majority}
        drawn |= draw_panel(ax, bars, title, references, styles)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"lra-bench leaderboard: profile '{profile}', protocol '{protocol}'\n"
        "test accuracy (%), mean over ok seeds; ranked; the axis spans the data",
        fontsize=11,
        y=1 - 0.08 / fig.get_figheight(),  # a fixed distance from the top, however tall
        va="top",
    )
    handles = legend_handles(drawn)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    # Room for the legend below (tight_layout leaves room for the title itself).
    fig.tight_layout(rect=(0, (0.35 if handles else 0) / fig.get_figheight(), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def plot_leaderboard(table: pd.DataFrame, out_dir: Path) -> dict[tuple[str, str], Path]:
    """One figure per (profile, protocol) of the leaderboard `table`, into out_dir:
    {(profile, protocol): path}."""
    out_dir = Path(out_dir)
    styles = model_styles(table.model)
    written = {}
    for (profile, protocol), rows in table.groupby(["profile", "protocol"], sort=True):
        path = out_dir / plot_name(profile, protocol)
        written[(profile, protocol)] = plot_group(rows, profile, protocol, path, styles)
    return written
