"""One colour and one marker per model, the same in every plot that draws models as bars or
points (the leaderboard, the bubble chart), so that a model keeps its look from plot to plot.

Models are numbered in the sorted order of the whole zoo (conf/model/*.yaml) together with the
models being drawn, whatever subset a plot shows; number i gets colour i of 40 distinct ones
(matplotlib's tab20, then tab20b) and marker i of a cycle of 12, so no two models of a zoo of up
to 40 share a colour, and the (colour, marker) pair repeats only after lcm(40, 12) = 120 models.
The Transformer, the baseline, is black.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from lra_bench import REPO_ROOT  # noqa: E402

BASELINE = "transformer"
MARKERS = "osD^vP<>Xph*"


def colours() -> list[tuple]:
    """40 distinct RGB colours: tab20's 20, then tab20b's 20."""
    return list(plt.get_cmap("tab20").colors) + list(plt.get_cmap("tab20b").colors)


def zoo() -> list[str]:
    """Every model with a config, sorted."""
    return sorted(path.stem for path in (REPO_ROOT / "conf" / "model").glob("*.yaml"))


def model_styles(models) -> dict[str, dict]:
    """{model: {"color": ..., "marker": ...}} for `models`: the baseline black with a circle;
    the others numbered in sorted order of the zoo and `models` together (the baseline left
    out), which fixes their colour and marker."""
    palette = colours()
    numbered = sorted((set(zoo()) | set(models)) - {BASELINE})
    index = {model: i for i, model in enumerate(numbered)}
    styles = {}
    for model in set(models):
        if model == BASELINE:
            styles[model] = {"color": (0.0, 0.0, 0.0), "marker": "o"}
            continue
        i = index[model]
        styles[model] = {"color": palette[i % len(palette)], "marker": MARKERS[i % len(MARKERS)]}
    return styles
