"""The leaderboard page: one self-contained HTML file beside its plots. Its structure is
checked as written; then headless Chromium renders it (installed by
scripts/install_chromium.sh where missing) and the DOM after its script ran shows the filters
and the sorting that the URL asks for, the plots loaded from the file system, and a screenshot."""

from __future__ import annotations

import struct
from html.parser import HTMLParser

import pytest

from lra_bench.headless import dump_dom, find_chromium, install_chromium, page_url, screenshot
from lra_bench.leaderboard import write_leaderboard
from tests.leaderboard_records import record, write_all


class Page(HTMLParser):
    """What the tests look at: the rows of #rows (attributes, cell texts and sort values), the
    .group sections, the images, #shown's text and <body>'s attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.groups: list[dict] = []
        self.images: list[dict] = []
        self.scripts: list[dict] = []
        self.links: list[str] = []
        self.body: dict = {}
        self.shown = ""
        self._in_rows = self._in_body = self._in_shown = False
        self._cell: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "table":
            self._in_rows = attrs.get("id") == "rows"
        elif tag == "tbody" and self._in_rows:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append({"attrs": attrs, "cells": []})
        elif tag == "td" and self._in_body:
            self._cell = {
                "value": attrs.get("data-value"),
                "class": attrs.get("class", ""),
                "text": "",
            }
            self.rows[-1]["cells"].append(self._cell)
        elif tag == "section" and "group" in attrs.get("class", ""):
            self.groups.append(attrs)
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts.append(attrs)
        elif tag == "span" and attrs.get("id") == "shown":
            self._in_shown = True
        for name in ("src", "href"):
            if name in attrs:
                self.links.append(attrs[name])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_rows = self._in_body = False
        elif tag == "td":
            self._cell = None
        elif tag == "span":
            self._in_shown = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in_shown:
            self.shown += data

    def visible_rows(self) -> list[dict]:
        return [r for r in self.rows if "hidden" not in r["attrs"]]


COLUMN = {"test_acc_mean": 4, "published": 9, "vs_transformer": 14}  # cell indices in a row


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A results folder of eight leaderboard rows over two profiles and two protocols."""
    root = tmp_path_factory.mktemp("results")
    write_all(
        root,
        [
            *[record(seed=s, test=t) for s, t in enumerate((0.37, 0.38, 0.39))],
            record(task="text", test=0.62),
            record(model="mamba2", test=0.44, parameters=1500),
            record(model="fnet", test=0.336, parameters=600),
            record(profile="lra", test=0.40),
            record(profile="lra", task="text", test=0.62),
            record(profile="lra", model="luna", test=0.38),
            record(profile="lra", test=0.60, protocol="spt-causal"),
        ],
    )
    write_leaderboard(root)
    return root / "leaderboard.html"


def test_the_page_is_one_file_whose_plots_lie_beside_it(page):
    parsed = Page(page.read_text())
    assert len(parsed.rows) == 8 and parsed.shown == "8 of 8 rows"
    assert all(not s.get("src") for s in parsed.scripts) and len(parsed.scripts) == 1
    assert not [link for link in parsed.links if "://" in link]  # nothing from a network
    sources = sorted(image["src"] for image in parsed.images)
    assert sources == [
        "plots/leaderboard_lra.png",
        "plots/leaderboard_lra_spt-causal.png",
        "plots/leaderboard_mini.png",
    ]
    assert all((page.parent / source).stat().st_size > 10_000 for source in sources)
    by_key = {
        (r["attrs"]["data-profile"], r["attrs"]["data-protocol"], r["cells"][1]["text"]): r
        for r in parsed.rows
        if r["attrs"]["data-task"] == "listops"
    }
    published = by_key[("lra", "scratch", "transformer")]["cells"]
    assert published[COLUMN["published"]]["text"].strip() == "36.37"
    assert published[COLUMN["published"] + 1]["text"] == "+3.63"
    assert "better" in published[COLUMN["published"] + 1]["class"]
    assert (
        by_key[("lra", "spt-causal", "transformer")]["cells"][COLUMN["published"]]["value"]
        == "59.15"
    )
    budget = by_key[("mini", "scratch", "mamba2")]["cells"][COLUMN["vs_transformer"]]
    assert budget["text"] == "1.50x OVER" and "over" in budget["class"]
    assert by_key[("mini", "scratch", "transformer")]["cells"][4]["text"] == "38.00 ± 1.00"


@pytest.fixture(scope="module")
def chromium():
    browser = find_chromium()
    if browser is None:
        browser, said = install_chromium()
        if browser is None:
            pytest.skip(f"Chromium is not installed and scripts/install_chromium.sh failed: {said}")
    return browser


def test_the_url_filters_and_sorts_the_rendered_rows(page, chromium):
    rendered = Page(dump_dom(chromium, page_url(page, "profile=lra&sort=test_acc_mean&order=asc")))
    assert rendered.body.get("data-ready") == "yes"  # the script ran
    rows = rendered.visible_rows()
    assert rendered.shown == "4 of 8 rows"
    assert {r["attrs"]["data-profile"] for r in rows} == {"lra"}
    accuracies = [float(r["cells"][COLUMN["test_acc_mean"]]["value"]) for r in rows]
    assert accuracies == pytest.approx([38.0, 40.0, 60.0, 62.0])
    visible = {
        (g["data-profile"], g["data-protocol"]) for g in rendered.groups if "hidden" not in g
    }
    assert visible == {("lra", "scratch"), ("lra", "spt-causal")}
    # Every plot loaded from the file system.
    assert [image.get("data-loaded") for image in rendered.images] == ["yes"] * 3

    by_task = Page(dump_dom(chromium, page_url(page, "task=text&protocol=scratch")))
    assert by_task.shown == "2 of 8 rows"
    assert {r["attrs"]["data-task"] for r in by_task.visible_rows()} == {"text"}


def test_a_screenshot_of_the_page(page, chromium, tmp_path):
    path = screenshot(chromium, page_url(page), tmp_path / "page.png", size=(1200, 900))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1200, 900) and len(data) > 50_000
