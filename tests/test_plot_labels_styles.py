"""A colour and a marker per model, the same in every plot; labels beside points that never
overprint (the bubble chart's); the bubble chart without points says so."""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from lra_bench.label_placement import place_labels  # noqa: E402
from lra_bench.speed.plots import plot_bubbles  # noqa: E402
from lra_bench.styles import model_styles, zoo  # noqa: E402


def test_forty_models_get_forty_colours_the_transformer_black_and_stable_styles():
    models = zoo()
    models += [f"new_{i}" for i in range(40 - len(models))]
    styles = model_styles(models)
    assert len({style["color"] for style in styles.values()}) == 40
    assert styles["transformer"]["color"] == (0.0, 0.0, 0.0)
    # A model looks the same in a plot that shows only some of the models.
    assert model_styles(["s4", "mamba"])["mamba"] == styles["mamba"]
    pairs = {(style["color"], style["marker"]) for style in styles.values()}
    assert len(pairs) == 40


def boxes(annotations) -> list:
    """The labels' text boxes (an annotation's own extent includes its leader line)."""
    renderer = annotations[0].figure.canvas.get_renderer()
    return [Text.get_window_extent(a, renderer) for a in annotations]


def test_labels_of_crowded_points_never_overprint():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 5.4))
    # Two points on top of each other (the Transformer and the Performer in the committed
    # bubble chart), and a tight cluster of twelve more.
    xy = [(1.6, 38.0), (1.62, 38.05)] + [
        (8 + rng.normal(0, 0.5), 38 + rng.normal(0, 0.6)) for _ in range(12)
    ]
    radii = [22.0, 6.0] + list(rng.uniform(5, 15, 12))
    ax.scatter(*zip(*xy), s=[(2 * r) ** 2 for r in radii], alpha=0.4)
    ax.set_xlim(0, 14)
    ax.set_ylim(33, 43)
    fig.canvas.draw()
    names = ["transformer", "performer"] + [f"model_{i}" for i in range(12)]
    annotations = place_labels(ax, xy, names, radii)
    assert [a.get_text() for a in annotations] == names
    fig.canvas.draw()
    placed = boxes(annotations)
    frame = ax.get_window_extent()
    for a, b in itertools.combinations(placed, 2):
        assert not a.overlaps(b)
    for box in placed:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 <= frame.y1
    plt.close(fig)


def test_bubble_chart_with_no_points_says_there_is_no_data(tmp_path):
    empty = pd.DataFrame(columns=["model", "steps_per_sec", "peak_mem_gb", "accuracy"])
    path = plot_bubbles(empty, 4096, "accuracy", "subtitle", "", tmp_path)
    assert path.stat().st_size > 5_000
