"""The published artifact's documentation holds: the README's column table is the schema, the
chance rates are the loaders' class counts, and every published row maps to a model and a
protocol without two rows claiming the same one."""

from __future__ import annotations

import re

import pytest

from lra_bench.compose import option_names, task_class
from lra_bench.leaderboard_schema import COLUMN_DOCS, COLUMNS, KEY
from lra_bench.published.accuracy import (
    AS_OURS,
    CLASSES,
    PROTOCOLS,
    TASKS6,
    model_and_protocol,
    read_published_accuracy,
)
from tests.conftest import REPO


def test_the_readme_documents_every_column_in_order():
    text = (REPO / "README.md").read_text()
    # The column table follows its own header row; other tables (statuses) may name a column.
    start = text.index("| column | meaning |")
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", text[start:], re.M)
    documented = [(name, doc) for name, doc in rows if name in COLUMN_DOCS]
    assert documented == list(COLUMN_DOCS.items())
    assert COLUMNS[: len(KEY)] == KEY


@pytest.mark.parametrize("task", TASKS6)
def test_chance_is_one_over_the_loaders_class_count(task):
    assert CLASSES[task] == task_class(task).num_classes


def test_published_rows_map_to_our_models_and_protocols():
    assert model_and_protocol("transformer_causal_spt") == ("transformer", "spt-causal")
    assert model_and_protocol("mega_chunk") == ("mega_chunk", "scratch")  # not ours: as is
    models = set(option_names("model"))
    for name, (model, protocol) in AS_OURS.items():
        assert model in models and protocol in PROTOCOLS, name
    table = read_published_accuracy()
    assert "chance" not in set(table.model)
    transformer = table[(table.model == "transformer") & (table.protocol == "scratch")]
    assert transformer.set_index("task").accuracy.to_dict() == pytest.approx(
        {
            "listops": 36.37,
            "text": 64.27,
            "retrieval": 57.46,
            "image": 42.44,
            "pathfinder": 71.40,
            "pathx": float("nan"),
        },
        nan_ok=True,
    )
    assert transformer.set_index("task").failed.pathx
