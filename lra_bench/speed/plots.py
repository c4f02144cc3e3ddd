"""Plots of a speed_memory.csv: steps/s and peak memory against sequence length (log-log, one
line per model, lengths that ran out of memory or time marked on the bottom edge), and the LRA
paper's Figure 3 bubble chart (accuracy against speed, bubble area = peak memory).

Each function draws the rows of one configuration (task, size, batch, device, precision); see
`lra_bench.speed.report.select_configuration`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from lra_bench.label_placement import place_labels  # noqa: E402
from lra_bench.styles import model_styles  # noqa: E402
from tasks.files import replaced_atomically  # noqa: E402

# How a measurement that produced no number is drawn on the bottom edge of the axes.
FAILURE_MARKERS = {
    "oom": ("X", "out of memory"),
    "timeout": ("v", "timeout"),
    "failed": ("*", "failed"),
}


def length_label(length: int) -> str:
    """1024 -> '1K', 65536 -> '64K', 1000 -> '1000'."""
    return f"{length // 1024}K" if length % 1024 == 0 else str(length)


def model_order(models) -> list[str]:
    """The Transformer first (the baseline), then the others alphabetically."""
    return sorted(set(models), key=lambda m: (m != "transformer", m))


# Baselines drawn in black so that every other line reads against them.
BASELINE_STYLES = {
    "transformer": {"color": "black", "linestyle": "-", "linewidth": 2.4},
    "transformer_explicit": {"color": "black", "linestyle": "--", "linewidth": 2.0},
}
MARKERS = "osD^vP<>Xph*"


def line_styles(models: list[str]) -> dict[str, dict]:
    """A distinct (colour, marker, line style) per model, for up to ~60 models: 20 colours of
    tab20, then the same colours dashed, then dotted; baselines in black."""
    colours = plt.get_cmap("tab20").colors
    styles, index = {}, 0
    for model in models:
        if model in BASELINE_STYLES:
            styles[model] = {**BASELINE_STYLES[model], "marker": "o"}
            continue
        styles[model] = {
            "color": colours[index % 20],
            "linestyle": ("-", "--", ":")[(index // 20) % 3],
            "marker": MARKERS[index % len(MARKERS)],
            "linewidth": 1.4,
        }
        index += 1
    return styles


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def plot_against_length(
    table: pd.DataFrame, column: str, ylabel: str, title: str, subtitle: str, path: Path
) -> Path:
    """Log-log `column` against length, one line per model; failures on the bottom edge."""
    models = model_order(table.model)
    styles = line_styles(models)
    columns = 1 if len(models) <= 16 else 2  # a legend that fits beside the axes
    rows_in_legend = -(-(len(models) + len(FAILURE_MARKERS)) // columns)
    fig, ax = plt.subplots(figsize=(7.0 + 2.0 * columns, max(4.8, 1.6 + 0.23 * rows_in_legend)))
    failures_seen = set()
    stacked: dict[int, int] = {}  # length -> failure markers already drawn there
    for model in models:
        rows = table[table.model == model].sort_values("length")
        colour = styles[model]["color"]
        ok = rows[(rows.status == "ok") & rows[column].notna()]
        ax.plot(ok.length, ok[column], markersize=5, label=model, **styles[model])
        for status, (marker, _) in FAILURE_MARKERS.items():
            failed = rows[rows.status == status]
            if failed.empty:
                continue
            failures_seen.add(status)
            for length in failed.length:
                # On the bottom edge (there is no value to draw), stacked where several
                # models fail at one length.
                level = stacked.get(length, 0)
                stacked[length] = level + 1
                ax.scatter(
                    [length],
                    [0.03 + 0.045 * level],
                    marker=marker,
                    s=70,
                    color=colour,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                    zorder=3,
                )
    lengths = sorted(table.length.unique())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([length_label(int(v)) for v in lengths])
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.5, 2, 40 rather than 5x10^-1
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    # Label the 2..9 ticks too when the data span less than a decade (else there is no label).
    ax.yaxis.set_minor_formatter(plain if high / low < 20 else NullFormatter())
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    for status in sorted(failures_seen):
        marker, text = FAILURE_MARKERS[status]
        handles.append(Line2D([], [], marker=marker, color="black", linestyle="", markersize=8))
        labels.append(text)
    ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_speed(table: pd.DataFrame, subtitle: str, out_dir: Path) -> Path:
    return plot_against_length(
        table,
        "steps_per_sec",
        "training steps per second (median)",
        "Training speed against sequence length",
        subtitle,
        Path(out_dir) / "speed_vs_length.png",
    )


def plot_memory(table: pd.DataFrame, subtitle: str, out_dir: Path) -> Path:
    return plot_against_length(
        table,
        "peak_mem_gb",
        "peak memory (GB)",
        "Peak training memory against sequence length",
        subtitle,
        Path(out_dir) / "memory_vs_length.png",
    )


def plot_bubbles(
    points: pd.DataFrame, length: int, accuracy_label: str, subtitle: str, note: str, out_dir: Path
) -> Path:
    """The LRA paper's Figure 3: average accuracy (y) against training steps/s at one length (x);
    bubble area proportional to peak memory. `points`: model, steps_per_sec, peak_mem_gb,
    accuracy (one row per model, only models that have all three). `note` is printed under the
    axes (models left out and why). Each model has its colour and, at the bubble's centre, its
    marker (lra_bench/styles.py); labels are placed last, clear of one another
    (lra_bench/label_placement.py)."""
    fig, ax = plt.subplots(figsize=(8.0, 5.4))
    largest = float(points.peak_mem_gb.max()) if not points.empty else 1.0
    scale = 2000.0 / largest  # points^2 per GB: the largest bubble is 2000 points^2
    points = points.sort_values("model")
    styles = model_styles(points.model)
    sizes = [max(20.0, gb * scale) for gb in points.peak_mem_gb]
    for (_, row), size in zip(points.iterrows(), sizes):
        style = styles[row.model]
        ax.scatter(
            row.steps_per_sec,
            row.accuracy,
            s=size,
            color=style["color"],
            alpha=0.45,
            edgecolors="black",
            linewidths=0.6,
        )
        ax.scatter(
            row.steps_per_sec,
            row.accuracy,
            s=18,
            marker=style["marker"],
            color=style["color"],
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
        )
    if points.empty:
        ax.text(
            0.5,
            0.5,
            "no data: no model has both a speed measurement and an accuracy",
            ha="center",
            transform=ax.transAxes,
        )
    else:
        span = points.steps_per_sec.max() / max(points.steps_per_sec.min(), 1e-12)
        if span > 10:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # Room for the largest bubbles and their labels inside the axes.
        ax.margins(x=0.3, y=0.3)
        references = sorted({largest, largest / 4}) if largest > 0 else []
        handles = [
            plt.scatter(
                [], [], s=max(20.0, gb * scale), color="grey", alpha=0.4, edgecolors="black"
            )
            for gb in references
        ]
        ax.legend(
            handles,
            [f"{gb:.3g} GB" for gb in references],
            title="peak memory",
            # Room for the largest bubble (2000 points^2: 45 points across; font size 8).
            labelspacing=3.0,
            handlelength=6.0,
            handletextpad=0.8,
            borderpad=1.5,
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    ax.set_xlabel(f"training steps per second at length {length_label(length)}")
    ax.set_ylabel(accuracy_label)
    ax.set_title(f"Accuracy, speed and memory (LRA Figure 3 style)\n{subtitle}", fontsize=10)
    ax.grid(True, alpha=0.3)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    # Labels last: their places are worked out on the final layout, in pixels.
    fig.canvas.draw()
    place_labels(
        ax,
        list(zip(points.steps_per_sec, points.accuracy)),
        list(points.model),
        [size**0.5 / 2 for size in sizes],  # a bubble of area s points^2 is sqrt(s) across
    )
    return _save(fig, Path(out_dir) / "accuracy_speed_memory.png")
