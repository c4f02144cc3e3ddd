"""leaderboard.html: the leaderboard as one self-contained page (style and script inline, from
lra_bench/leaderboard_page/) that opens from the file system, with its plots beside it
(plots/*.png, referenced relatively).

The page: the CSV's header facts; filters by task, profile and protocol and a sortable table of
every row (state in the URL hash: `leaderboard.html#profile=mini&sort=test_acc_mean&order=desc`);
per profile and protocol, the papers' view (a model per line, a column per task, the averages)
and the plot; published numbers beside ours at a glance (a dot for ours, a diamond for the
paper's, the difference coloured); the published table itself and what every column means.
Without JavaScript it still shows everything, unfiltered, in the ranked order.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd
from matplotlib.colors import to_hex

from lra_bench.leaderboard_compare import ordered_tasks, wide_summary
from lra_bench.leaderboard_markdown import NOTES, accuracy, budget, number, published
from lra_bench.leaderboard_page import SCRIPT, STYLE
from lra_bench.leaderboard_schema import BUDGET, COLUMN_DOCS
from lra_bench.published import ACCURACY_CSV
from lra_bench.published.accuracy import NOT_MODELS, TASKS6, model_and_protocol
from lra_bench.styles import model_styles

# The columns of the rows table: (CSV column it sorts by, heading, number or text).
ROW_COLUMNS = [
    ("task", "task", "text"),
    ("model", "model", "text"),
    ("profile", "profile", "text"),
    ("protocol", "protocol", "text"),
    ("test_acc_mean", "test acc (%)", "number"),
    ("seeds", "seeds", "number"),
    ("failed", "failed", "number"),
    ("majority_rate", "majority", "number"),
    ("chance_rate", "chance", "number"),
    ("published_acc", "ours vs published", "number"),
    ("diff_vs_published", "ours − published", "number"),
    ("avg5", "avg5", "number"),
    ("avg6", "avg6", "number"),
    ("parameters", "parameters", "number"),
    ("params_vs_transformer", "vs Transformer", "number"),
    ("steps_per_second", "steps/s", "number"),
    ("variant", "variant", "text"),
    ("git_commits", "commits", "text"),
    ("devices", "devices", "text"),
]


def _value(value) -> str:
    """A cell's sort key: the plain number or text, '' where missing."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _cell(text: str, value=None, classes: str = "", title: str | None = None) -> str:
    attributes = f' data-value="{escape(_value(value))}"' if value is not None else ""
    if classes:
        attributes += f' class="{classes}"'
    if title:
        attributes += f' title="{escape(title)}"'
    return f"<td{attributes}>{text}</td>"


def dumbbell(ours: float, paper: float, window: float = 10.0) -> str:
    """A small inline picture: the paper's number (open diamond) at the centre of a
    +-`window`-point scale, ours (filled dot) where it falls (held at the edge beyond it),
    joined by a line."""
    width, height, pad = 110, 14, 6

    def x(value: float) -> float:
        offset = min(max(value - paper, -window), window)
        return width / 2 + (width / 2 - pad) * offset / window

    a, b = x(ours), x(paper)
    return (
        f'<svg class="dumbbell" width="{width}" height="{height}" role="img" '
        f'aria-label="ours {ours:.2f}, published {paper:.2f}">'
        f'<line x1="{pad}" y1="7" x2="{width - pad}" y2="7" stroke="#ddd"/>'
        f'<line x1="{min(a, b):.1f}" y1="7" x2="{max(a, b):.1f}" y2="7" stroke="#888" '
        'stroke-width="2"/>'
        f'<path d="M{b:.1f} 2 L{b + 5:.1f} 7 L{b:.1f} 12 L{b - 5:.1f} 7 Z" fill="white" '
        'stroke="black"/>'
        f'<circle cx="{a:.1f}" cy="7" r="3.5" fill="#1f77b4"/></svg>'
    )


def difference_class(difference: float) -> str:
    """better: at or above the paper; close: within 2 points below; worse: further below."""
    if difference != difference:
        return "none"
    return "better" if difference >= 0 else "close" if difference > -2 else "worse"


def row_html(r) -> str:
    """One <tr> of the rows table (r: a row of the leaderboard, as a namedtuple)."""
    if r.published_acc == r.published_acc:
        versus = _cell(
            f"{dumbbell(r.test_acc_mean, r.published_acc)} {r.published_acc:.2f}",
            r.published_acc,
            "num",
            f"ours {r.test_acc_mean:.2f}, published {r.published_acc:.2f} ({r.published_source})",
        )
    else:
        text = published(r.published_acc, r.published_source)
        why = r.published_source or (
            "published numbers sit beside lra-profile rows only"
            if r.profile != "lra"
            else "no published number for this model, protocol and task"
        )
        versus = _cell(text, r.published_acc, "num none", why)
    over = r.over_budget is True
    cells = [
        _cell(escape(r.task), r.task),
        _cell(escape(r.model), r.model),
        _cell(escape(r.profile), r.profile),
        _cell(escape(r.protocol), r.protocol),
        _cell(accuracy(r.test_acc_mean, r.test_acc_std, r.seeds), r.test_acc_mean, "num"),
        _cell(str(r.seeds), r.seeds, "num"),
        _cell(str(r.failed), r.failed, "num"),
        _cell(number(r.majority_rate), r.majority_rate, "num"),
        _cell(number(r.chance_rate), r.chance_rate, "num"),
        versus,
        _cell(
            number(r.diff_vs_published, sign=True),
            r.diff_vs_published,
            f"num {difference_class(r.diff_vs_published)}",
        ),
        _cell(number(r.avg5), r.avg5, "num"),
        _cell(number(r.avg6), r.avg6, "num"),
        _cell(number(r.parameters), r.parameters, "num"),
        _cell(
            budget(r.params_vs_transformer, r.over_budget),
            r.params_vs_transformer,
            "num over" if over else "num",
            f"more than {BUDGET:.2f}x the Transformer's parameters" if over else None,
        ),
        _cell(number(r.steps_per_second), r.steps_per_second, "num"),
        _cell(escape(r.variant) + ("" if r.selected else " (not selected)"), r.variant),
        _cell(escape(r.git_commits or "-"), r.git_commits or ""),
        _cell(escape(r.devices or "-"), r.devices or ""),
    ]
    selected = "" if r.selected else ' class="not-selected"'
    data = " ".join(
        f'data-{key}="{escape(getattr(r, key))}"' for key in ("task", "profile", "protocol")
    )
    return f"<tr {data}{selected}>{''.join(cells)}</tr>"


def rows_table(table: pd.DataFrame) -> str:
    head = "".join(
        f'<th data-key="{key}" data-type="{kind}" title="{escape(COLUMN_DOCS[key])}">'
        f"{escape(heading)}</th>"
        for key, heading, kind in ROW_COLUMNS
    )
    order = {task: i for i, task in enumerate(ordered_tasks(table.task))}
    ranked = table.assign(_task=table.task.map(order)).sort_values(
        ["profile", "protocol", "_task", "test_acc_mean"],
        ascending=[True, True, True, False],
        na_position="last",
    )
    body = "\n".join(row_html(r) for r in ranked.itertuples())
    return f'<table id="rows"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def summary_html(table: pd.DataFrame, profile: str, protocol: str, plot: Path | None) -> str:
    """The papers' view of one profile and protocol, and its plot."""
    wide = wide_summary(table, profile, protocol)
    tasks = [t for t in ordered_tasks(table.task) if t in wide.columns]
    show_published = profile == "lra"
    heads = ["#", "model", *tasks, "avg5", "avg6"]
    if show_published:
        heads += ["published avg5", "published avg6"]
    heads.append("vs Transformer")
    styles = model_styles(table.model)
    lines = []
    for rank, (model, line) in enumerate(wide.iterrows(), start=1):
        numbers = [number(line[t]) for t in tasks] + [number(line.avg5), number(line.avg6)]
        if show_published:
            numbers += [number(line.published_avg5), number(line.published_avg6)]
        ratio = line.params_vs_transformer
        over = bool(ratio > BUDGET) if ratio == ratio else None
        colour = to_hex(styles[model]["color"])
        lines.append(
            f'<tr><td class="num">{rank}</td><td><span class="swatch" '
            f'style="background:{colour}"></span>{escape(model)}</td>'
            + "".join(f'<td class="num">{c}</td>' for c in numbers)
            + f'<td class="num{" over" if over else ""}">{budget(ratio, over)}</td></tr>'
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    figure = (
        f'<figure class="plot"><img src="{escape(plot.as_posix())}" '
        f'alt="leaderboard plot, profile {escape(profile)}, protocol {escape(protocol)}" '
        "onload=\"this.setAttribute('data-loaded', 'yes')\" "
        "onerror=\"this.setAttribute('data-loaded', 'no')\">"
        f"<figcaption>{escape(plot.name)}: ranked test accuracy per task; error bars where "
        "there are several seeds; diamonds: published</figcaption></figure>"
        if plot is not None
        else ""
    )
    return (
        f'<section class="group" data-profile="{escape(profile)}" '
        f'data-protocol="{escape(protocol)}">'
        f"<h3>Profile <code>{escape(profile)}</code>, protocol <code>{escape(protocol)}</code>"
        "</h3>"
        f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}'
        f"</tbody></table>{figure}</section>"
    )


def published_html(path: Path = ACCURACY_CSV) -> str:
    """The published table as lra_bench/published/lra_accuracy.csv gives it, with the model
    and protocol each row is set beside."""
    wide = pd.read_csv(path, dtype=str, keep_default_na=False)
    lines = []
    for _, entry in wide[~wide.model.isin(NOT_MODELS)].iterrows():
        model, protocol = model_and_protocol(entry.model)
        cells = [entry.model, model, protocol, *[entry[t] or "-" for t in TASKS6]]
        cells += [entry.avg5 or "-", entry.avg6 or "-", entry.source]
        lines.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    heads = ["published as", "our model", "protocol", *TASKS6, "avg5", "avg6", "source"]
    head = "".join(f"<th>{h}</th>" for h in heads)
    return (
        "<details><summary>Published numbers (set beside <code>lra</code>-profile rows)"
        '</summary><p class="note">lra_bench/published/lra_accuracy.csv; FAIL: no better '
        "than chance. A published model named as one of ours is that model with that "
        "setting (e.g. luna_256 is our luna, packed length 256); self-pretrained rows carry "
        f"their protocol.</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}"
        "</tbody></table></details>"
    )


def columns_html() -> str:
    items = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(doc)}</dd>" for name, doc in COLUMN_DOCS.items()
    )
    return (
        "<details><summary>What each column means (leaderboard.csv)</summary>"
        f'<dl class="columns">{items}</dl></details>'
    )


def _select(key: str, values) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (
        f'<label>{key} <select id="filter-{key}"><option value="">all</option>{options}'
        "</select></label>"
    )


def to_html(table: pd.DataFrame, header: list[str], plots: dict | None = None) -> str:
    """The whole page. `plots`: {(profile, protocol): path relative to the page}."""
    plots = plots or {}
    facts = "".join(f"<li>{escape(line)}</li>" for line in header)
    if table.empty:
        content = '<p class="empty">No data: no run records were found.</p>'
    else:
        filters = (
            '<form id="filters" onsubmit="return false">'
            + _select("task", ordered_tasks(table.task))
            + _select("profile", sorted(table.profile.unique()))
            + _select("protocol", sorted(table.protocol.unique()))
            + '<button type="button" id="reset">show all</button>'
            f'<span id="shown">{len(table)} of {len(table)} rows</span></form>'
        )
        groups = (
            table[["profile", "protocol"]].drop_duplicates().sort_values(["profile", "protocol"])
        )
        summaries = "\n".join(
            summary_html(table, profile, protocol, plots.get((profile, protocol)))
            for profile, protocol in groups.itertuples(index=False)
        )
        content = (
            f"{filters}<h2>Per profile and protocol</h2>{summaries}"
            f'<h2>Every row</h2><p class="note">Click a heading to sort. Ranked within each '
            "task. Ours vs published: the diamond is the paper's number, the dot ours, on a "
            f"scale of ±10 points around it. {escape(NOTES)}</p>{rows_table(table)}"
            f"{published_html()}{columns_html()}"
            f"<script>\n{SCRIPT.read_text()}</script>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>lra-bench leaderboard</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>\n{STYLE.read_text()}</style></head>\n<body>"
        f'<h1>lra-bench leaderboard</h1><ul class="header">{facts}</ul>{content}'
        "</body></html>\n"
    )
