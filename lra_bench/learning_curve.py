"""A run's learning curve, drawn from its metrics.csv (lra_bench/metrics_log.py): training loss
(left axis) and validation accuracy (right axis) against the optimizer step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tasks.files import replaced_atomically  # noqa: E402


def plot_learning_curve(metrics_csv: Path, out: Path, title: str = "") -> Path | None:
    """Draws `out` (PNG) from `metrics_csv`; None when the file holds no row yet."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.exists():
        return None
    rows = pd.read_csv(metrics_csv)
    if rows.empty:
        return None
    figure, loss_axis = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    losses = rows.dropna(subset=["loss"])
    loss_axis.plot(losses.step, losses.loss, color="tab:blue", lw=1.2, label="training loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    loss_axis.tick_params(axis="y", colors="tab:blue")
    accuracy_axis = loss_axis.twinx()
    evaluations = rows.dropna(subset=["val_accuracy"])
    accuracy_axis.plot(
        evaluations.step,
        100 * evaluations.val_accuracy,
        color="tab:orange",
        marker="o",
        ms=3,
        lw=1.2,
        label="validation accuracy",
    )
    accuracy_axis.set_ylabel("validation accuracy (%)", color="tab:orange")
    accuracy_axis.tick_params(axis="y", colors="tab:orange")
    if len(evaluations):
        best = evaluations.loc[evaluations.val_accuracy.idxmax()]
        accuracy_axis.annotate(
            f"best {100 * best.val_accuracy:.1f}% at step {int(best.step)}",
            (best.step, 100 * best.val_accuracy),
            textcoords="offset points",
            xytext=(-4, -12),
            ha="right",
            fontsize=8,
            color="tab:orange",
        )
    loss_axis.set_title(title, fontsize=9)
    out = Path(out)
    with replaced_atomically(out) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return out
