"""The human-readable side of a speed run: DIR/speed_memory.md (our table, and the published LRA
Table 2 beside it, labelled as another machine) and the three plots of `lra_bench.speed.plots`,
all drawn from DIR/speed_memory.csv and a leaderboard CSV, never from live measurements.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lra_bench.leaderboard import read_leaderboard
from lra_bench.published import SPEED_MEMORY_CSV
from lra_bench.published.accuracy import SCRATCH
from lra_bench.speed.plots import length_label, model_order, plot_bubbles, plot_memory, plot_speed
from lra_bench.speed.runner import BASELINE, CSV_NAME, read_speed_csv
from tasks.files import replaced_atomically

PUBLISHED_SPEED = SPEED_MEMORY_CSV
PUBLISHED_LENGTHS = (1024, 2048, 3072, 4096)
CONFIGURATION = ["task", "size", "batch", "device_name", "precision"]


def read_header(path: Path) -> list[str]:
    """The `# ` comment lines at the top of a speed_memory.csv, without the `# `."""
    lines = []
    with open(path) as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return lines


def select_configuration(
    table: pd.DataFrame, task: str, size: str, batch: int, device_name: str | None = None
) -> pd.DataFrame:
    """The rows of one configuration: `task`, `size`, `batch`, and the device and precision of
    `device_name` (default: those of the most recently measured row of task/size/batch)."""
    rows = table[(table.task == task) & (table["size"] == size) & (table.batch == batch)]
    if rows.empty:
        return rows
    if device_name is None:
        latest = rows.sort_values("measured_at").iloc[-1]
        device_name, precision = latest.device_name, latest.precision
    else:
        precision = rows[rows.device_name == device_name].precision.iloc[-1]
    return rows[(rows.device_name == device_name) & (rows.precision == precision)]


def subtitle(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    return (
        f"{first.task} task shape, batch {first.batch}, size {first['size']} (d_model "
        f"{first.d_model}, {first.n_layers} layers, d_ff {first.d_ff}), {first.device_name} "
        f"({first.device}, {first.precision})"
    )


def average_accuracy(leaderboard: pd.DataFrame, profile: str) -> tuple[pd.Series, list, dict]:
    """(mean test accuracy (%) over the profile's tasks per model, the tasks, {model: tasks it
    lacks}). The tasks are all those with a result in `profile`; a model lacking any of them is
    left out (averages over different task sets are not comparable). Where a model has several
    variants of a task, the one with the most seeds counts (ties: the first listed). Only
    from-scratch rows count (a leaderboard without a protocol column has only those)."""
    rows = leaderboard[(leaderboard.profile == profile) & leaderboard.test_acc_mean.notna()]
    if "protocol" in rows:
        rows = rows[rows.protocol == SCRATCH]
    tasks = sorted(rows.task.unique())
    if rows.empty:
        return pd.Series(dtype=float), tasks, {}
    chosen = rows.sort_values("seeds", ascending=False, kind="stable").drop_duplicates(
        ["model", "task"]
    )
    per_model = chosen.pivot(index="model", columns="task", values="test_acc_mean")
    per_model = per_model.reindex(columns=tasks)
    lacking = {
        model: [t for t in tasks if pd.isna(per_model.loc[model, t])]
        for model in per_model.index
        if per_model.loc[model].isna().any()
    }
    return per_model.dropna().mean(axis=1), tasks, lacking


def bubble_points(
    rows: pd.DataFrame, leaderboard: pd.DataFrame | None, profile: str, length: int
) -> tuple[pd.DataFrame, str, str]:
    """(points for the bubble chart, the y label, a note naming the models left out)."""
    measured = rows[(rows.length == length) & (rows.status == "ok")].set_index("model")
    if leaderboard is None:
        accuracy, tasks, lacking = pd.Series(dtype=float), [], {}
    else:
        accuracy, tasks, lacking = average_accuracy(leaderboard, profile)
    points = pd.DataFrame(
        [
            {
                "model": m,
                "steps_per_sec": measured.loc[m, "steps_per_sec"],
                "peak_mem_gb": measured.loc[m, "peak_mem_gb"],
                "accuracy": accuracy[m],
            }
            for m in model_order(rows.model)
            if m in measured.index and m in accuracy.index
        ],
        columns=["model", "steps_per_sec", "peak_mem_gb", "accuracy"],
    )
    notes = []
    no_accuracy = [m for m in model_order(rows.model) if m not in accuracy.index]
    if no_accuracy:
        parts = [f"{m} (lacks {', '.join(lacking[m])})" if m in lacking else m for m in no_accuracy]
        notes.append(
            f"left out, no accuracy in profile '{profile}' on every task: " + ", ".join(parts)
        )
    unmeasured = [m for m in accuracy.index if m in set(rows.model) and m not in measured.index]
    if unmeasured:
        notes.append(
            f"left out, no ok measurement at {length_label(length)}: " + ", ".join(unmeasured)
        )
    label = (
        f"mean test accuracy over {len(tasks)} task{'s' if len(tasks) > 1 else ''} (%), "
        f"profile '{profile}'"
        if tasks
        else f"mean test accuracy (%), profile '{profile}'"
    )
    return points, label, "; ".join(notes)


def _number(value, digits: int = 3, prefix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{prefix}{value:.{digits}g}"


def measured_table(rows: pd.DataFrame) -> str:
    lines = [
        "| model | length | status | steps/s (min–max) | speed-up vs Transformer | peak memory (GB) "
        "| memory vs Transformer | parameters | TFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in model_order(rows.model):
        for _, r in rows[rows.model == model].sort_values("length").iterrows():
            ok = r.status == "ok"
            speed = (
                f"{r.steps_per_sec:.3g} ({r.steps_per_sec_min:.3g}–{r.steps_per_sec_max:.3g})"
                if ok
                else "–"
            )
            status = r.status if ok or pd.isna(r.error) else f"{r.status}: {r.error}"
            params = "–" if pd.isna(r.params) else f"{int(r.params):,}"
            utilisation = "–" if pd.isna(r.mfu) else f"≥ {100 * r.mfu:.2g}%"
            lines.append(
                f"| {model} | {length_label(int(r.length))} | {status} | {speed} "
                f"| {_number(r.speedup_vs_transformer, 2)} "
                f"| {_number(r.peak_mem_gb) if ok else '–'} "
                f"| {_number(r.mem_ratio_vs_transformer, 2)} | {params} "
                f"| {_number(r.achieved_tflops, 3, '≥ ')} | {utilisation} |"
            )
    return "\n".join(lines)


def published_table(rows: pd.DataFrame, published: pd.DataFrame) -> str:
    """Ours beside the LRA paper's Table 2 at 1K..4K, for every model in either."""
    published = published.copy()
    base = published[published.model == BASELINE].set_index("len").peak_mem_gb
    published["mem_ratio"] = published.peak_mem_gb / published.len.map(base)
    published = published.set_index(["model", "len"])
    ours = rows.set_index(["model", "length"])
    models = model_order([*rows.model.unique(), *published.index.get_level_values(0)])
    lines = [
        "| model | length | steps/s here | speed-up here | steps/s LRA | speed-up LRA "
        "| memory GB here | ratio here | memory GB LRA | ratio LRA |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for length in PUBLISHED_LENGTHS:
            here = ours.loc[(model, length)] if (model, length) in ours.index else None
            if isinstance(here, pd.DataFrame):
                here = here.iloc[-1]
            paper = published.loc[(model, length)] if (model, length) in published.index else None
            if here is None and paper is None:
                continue
            ok = here is not None and here.status == "ok"
            shown_here = [
                _number(here.steps_per_sec) if ok else (here.status if here is not None else "–"),
                _number(here.speedup_vs_transformer, 2) if ok else "–",
            ]
            memory_here = [
                _number(here.peak_mem_gb) if ok else "–",
                _number(here.mem_ratio_vs_transformer, 2) if ok else "–",
            ]
            shown_paper = (
                [_number(paper.steps_per_sec, 2), _number(paper.speedup_vs_transformer, 2)]
                if paper is not None
                else ["–", "–"]
            )
            memory_paper = (
                [_number(paper.peak_mem_gb, 3), _number(paper.mem_ratio, 2)]
                if paper is not None
                else ["–", "–"]
            )
            cells = [
                model,
                length_label(length),
                *shown_here,
                *shown_paper,
                *memory_here,
                *memory_paper,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(
    rows: pd.DataFrame, header: list[str], published: pd.DataFrame | None, figures: list[Path]
) -> str:
    parts = [
        "# Speed and memory against sequence length",
        "",
        "Measured with `lra-bench speed` on this machine; the LRA paper's Table 2 protocol "
        "(Tay et al., 2021): training steps per second (forward, backward, optimizer step) and "
        "peak memory, one model size for every model.",
        "",
        *[f"- {line}" for line in header],
        "",
        f"## Measured here: {subtitle(rows)}",
        "",
        measured_table(rows),
        "",
        "Steps/s: the median over the timed steps (min–max in brackets). TFLOP/s and MFU count "
        "only the FLOPs torch's FlopCounterMode sees, so they are lower bounds; MFU is against "
        "the peak matmul FLOP/s measured in the same run.",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in figures],
        "",
    ]
    if published is not None:
        parts += [
            "## Beside the published LRA Table 2 (another machine)",
            "",
            "The LRA columns are the paper's Table 2 (byte-level text, batch 32), measured on a "
            "**4x4 TPU v3 with JAX/Flax, not on this machine**: absolute steps/s and GB are not "
            "comparable across the two; the ratios against the Transformer at the same length "
            "are the numbers to compare. LRA memory ratios are computed here from its GB "
            "columns. Synthesizer's published 3K speed repeats Sinkhorn's and is likely a "
            "misprint in the paper. Our Transformer computes attention with torch's fused "
            "`scaled_dot_product_attention` (flash or memory-efficient kernels), which never "
            "stores the L x L attention matrix; LRA's did, so its memory grew about "
            "quadratically with length where ours grows about linearly, and our memory ratios "
            "of efficient models against it are expected to be closer to 1.",
            "",
            published_table(rows, published),
            "",
        ]
    return "\n".join(parts)


def write_report(
    out_dir: Path,
    task: str,
    size: str,
    batch: int,
    leaderboard_path: Path | None = None,
    profile: str = "lra",
    bubble_length: int | None = None,
    published_path: Path = PUBLISHED_SPEED,
) -> list[Path]:
    """Draws the plots and writes speed_memory.md for one configuration of
    out_dir/speed_memory.csv. Returns the files written."""
    out_dir = Path(out_dir)
    csv_path = out_dir / CSV_NAME
    rows = select_configuration(read_speed_csv(csv_path), task, size, batch)
    if rows.empty:
        raise ValueError(f"{csv_path} has no rows for task {task}, size {size}, batch {batch}")
    plots = out_dir / "plots"
    line = subtitle(rows)
    written = [plot_speed(rows, line, plots), plot_memory(rows, line, plots)]
    lengths = sorted(rows.length.unique())
    if bubble_length is None:
        bubble_length = 4096 if 4096 in lengths else int(lengths[-1])
    leaderboard_path = Path(leaderboard_path or out_dir / "leaderboard.csv")
    leaderboard = read_leaderboard(leaderboard_path) if leaderboard_path.exists() else None
    points, label, note = bubble_points(rows, leaderboard, profile, bubble_length)
    if leaderboard is None:
        note = f"no leaderboard at {leaderboard_path}; " + note
    written.append(plot_bubbles(points, bubble_length, label, line, note, plots))
    published = pd.read_csv(published_path) if Path(published_path).exists() else None
    text = summary_markdown(rows, read_header(csv_path), published, written)
    if note:
        text += f"\nBubble chart at {length_label(bubble_length)}: {note}.\n"
    md_path = out_dir / "speed_memory.md"
    with replaced_atomically(md_path) as tmp:
        tmp.write_text(text)
    return [*written, md_path]
