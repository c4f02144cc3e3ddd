"""Parameter budgets (lra_bench/budget.py): counts without data or memory that match what the
runs counted, against figures worked out by hand from LRA's sizes."""

from __future__ import annotations

import pytest

from lra_bench.budget import budget_table, format_budget, over_budget, parameter_count
from lra_bench.cli import main
from lra_bench.records import RunRecord, find_all_records
from tests.conftest import REPO, compose_config

COMMITTED = find_all_records(REPO / "results")


def test_parameter_count_of_lras_transformer_on_listops():
    """LRA_SPEC 5.2 ListOps: emb 512, 4 layers, qkv 512, mlp 1024, 10 classes, [CLS]; attention
    projections without bias (LRA's); our vocabulary 16; sinusoidal positions (no parameters)."""
    d, layers, mlp, classes, vocabulary = 512, 4, 1024, 10, 16
    norms = 2 * 2 * d
    attention = 3 * d * d + d * d
    feed_forward = (d * mlp + mlp) + (mlp * d + d)
    head = (d * mlp + mlp) + (mlp * classes + classes)
    expected = vocabulary * d + d + layers * (norms + attention + feed_forward) + 2 * d + head
    assert expected == 8_948_234
    cfg = compose_config(["task=listops", "model=transformer", "profile=lra"])
    assert parameter_count(cfg) == expected


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: "/".join(p.parts[-6:-1]))
def test_parameter_count_of_a_records_config_is_what_the_run_counted(path):
    """Every committed record, each stage's model: a pretraining run counts its wrapper (no
    classifier head; mask vector and prediction head), a fine-tuning run its classifier."""
    record = RunRecord.read(path)
    assert parameter_count(record.config, record.stage) == record.parameters > 0


def test_pretraining_count_is_the_classifier_without_its_head_plus_mask_and_prediction_head():
    """ListOps mini Transformer: the classifier's head (width -> mlp -> 10 classes) removed; a
    mask vector (width) and a prediction head (width -> vocabulary 16, with bias) added."""
    cfg = compose_config(["task=listops", "model=transformer", "profile=mini", "pretrain=masked"])
    width, mlp, classes, vocabulary = 64, 128, 10, 16
    head = (width * mlp + mlp) + (mlp * classes + classes)
    added = width + (width * vocabulary + vocabulary)
    assert parameter_count(cfg, "pretrain") == parameter_count(cfg) - head + added
    with pytest.raises(ValueError, match="stage='finetune'"):
        parameter_count(cfg, "finetune")


def test_over_budget_is_lras_ten_percent():
    assert not over_budget(110, 100) and over_budget(111, 100)


def test_budget_table_flags_a_model_over_the_transformers_count(capsys):
    """Pathfinder: LRA's Transformer is 4 layers of width 32, S4's config 6 layers of 256."""
    rows = budget_table("lra", ["pathfinder"], ["transformer", "s4"])
    transformer, s4 = rows
    assert (transformer.ratio, transformer.over) == (1.0, False)
    assert s4.reference == transformer.parameters and s4.ratio > 40 and s4.over
    lines = format_budget(rows)
    assert "OVER" in lines[2] and "OVER" not in lines[1]
    assert lines[-1].startswith("1 of 2 over")
    main(["budget", "--tasks", "pathfinder", "--models", "s4"])
    assert "OVER" in capsys.readouterr().out


def test_budget_command_rejects_unknown_names():
    with pytest.raises(SystemExit):
        main(["budget", "--models", "no_such_model"])
