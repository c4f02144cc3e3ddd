"""The leaderboard plots: ranked bars with their values, error bars only over several seeds,
an axis that spans the data, a message where there is no data, one figure per profile and
protocol."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from lra_bench.leaderboard import aggregate  # noqa: E402
from lra_bench.plots import draw_panel, panel_rows, plot_leaderboard  # noqa: E402
from lra_bench.styles import model_styles  # noqa: E402


def runs(rows: list[tuple]) -> pd.DataFrame:
    """Runs as load_runs gives them: (task, model, profile, protocol, seed, status, accuracy)."""
    return pd.DataFrame(
        [
            {
                "task": task,
                "model": model,
                "profile": profile,
                "protocol": protocol,
                "variant": "v",
                "seed": seed,
                "status": status,
                "test_accuracy": accuracy if status == "ok" else None,
                "val_accuracy": accuracy,
                "majority_rate": 0.165,
                "parameters": 1000,
                "steps_per_second": 1.0,
                "validation_is_test": False,
            }
            for task, model, profile, protocol, seed, status, accuracy in rows
        ]
    )


@pytest.fixture
def panel_table() -> pd.DataFrame:
    rows = [
        ("listops", "transformer", "mini", "scratch", s, "ok", a)
        for s, a in enumerate((0.37, 0.38, 0.39))
    ]
    rows += [
        ("listops", "mamba2", "mini", "scratch", 0, "ok", 0.44),
        ("listops", "fnet", "mini", "scratch", 0, "ok", 0.336),
        ("listops", "reformer", "mini", "scratch", 0, "failed", None),
        ("listops", "reformer", "mini", "scratch", 1, "oom", None),
    ]
    return aggregate(runs(rows))


def test_a_panel_ranks_bars_writes_values_and_spans_the_data(panel_table):
    fig, ax = plt.subplots()
    bars = panel_rows(panel_table, "listops")
    assert bars.label.tolist() == ["mamba2", "transformer", "fnet", "reformer"]
    draw_panel(ax, bars, "listops", {"chance": 10.0, "majority": 16.5}, model_styles(bars.model))
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["mamba2", "transformer", "fnet", "reformer"]
    # One error bar: only the Transformer has several seeds.
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segments,) = [c.get_segments() for c in container.lines[2]]
    assert len(segments) == 1
    assert segments[0][:, 0].tolist() == pytest.approx([37.0, 39.0])  # 38 ± 1
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["44.00", "38.00 ± 1.00", "33.60", "all 2 runs failed"]
    low, high = ax.get_xlim()
    assert 30.0 < low < 33.6 and 44.0 < high < 46.0  # the data, not 0..100
    # The majority (16.5) and chance (10) rates lie outside: no line drawn for them.
    assert not [line for line in ax.lines if line.get_linestyle() in ("--", ":")]
    plt.close(fig)


def test_a_panel_without_results_says_so():
    table = aggregate(runs([("text", "s4", "mini", "scratch", 0, "failed", None)]))
    fig, ax = plt.subplots()
    draw_panel(ax, panel_rows(table, "text"), "text", {}, model_styles(["s4"]))
    assert [t.get_text() for t in ax.texts] == ["no data: all 1 runs failed"]
    assert not ax.patches
    plt.close(fig)


def test_one_figure_per_profile_and_protocol(tmp_path, panel_table):
    more = aggregate(
        runs(
            [
                ("listops", "transformer", "lra", "spt-causal", 0, "ok", 0.59),
                ("text", "transformer", "lra", "spt-causal", 0, "ok", 0.88),
            ]
        )
    )
    written = plot_leaderboard(pd.concat([panel_table, more], ignore_index=True), tmp_path)
    assert {key: path.name for key, path in written.items()} == {
        ("mini", "scratch"): "leaderboard_mini.png",
        ("lra", "spt-causal"): "leaderboard_lra_spt-causal.png",
    }
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
