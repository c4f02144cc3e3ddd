"""The leaderboard's columns: protocol in the key, the selected variant, the 5- and 6-task
averages, the parameter budget, the published numbers beside `lra` rows, chance, and the CSV's
header and schema."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from lra_bench.environment import cpu_name, git_state
from lra_bench.leaderboard import (
    COLUMNS,
    aggregate,
    format_row,
    load_runs,
    read_leaderboard,
    record_protocol,
    write_leaderboard,
)
from lra_bench.published.accuracy import TASKS5, TASKS6
from lra_bench.records import RunRecord
from tests.leaderboard_records import record, write_all


def table_of(tmp_path, records: list[dict]) -> pd.DataFrame:
    write_all(tmp_path, records)
    return aggregate(load_runs(tmp_path))


def row(table: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for key, value in where.items():
        mask &= table[key] == value
    (index,) = table.index[mask]
    return table.loc[index]


def test_protocol_is_the_record_field_and_scratch_for_records_without_one():
    plain = record()
    assert "protocol" not in plain  # as every record made before self-pretraining
    assert record_protocol(RunRecord.from_dict(plain)) == "scratch"
    assert record_protocol(RunRecord.from_dict(record(protocol="spt-causal"))) == "spt-causal"


def test_rows_of_different_protocols_are_never_averaged_together(tmp_path):
    table = table_of(
        tmp_path,
        [
            record(seed=0, test=0.40),
            record(seed=1, test=0.50),
            record(test=0.9, protocol="spt-causal"),
        ],
    )
    assert sorted(zip(table.protocol, table.test_acc_mean, table.seeds)) == [
        ("scratch", 45.0, 2),
        ("spt-causal", 90.0, 1),
    ]


def test_the_selected_variant_has_the_best_validation_accuracy_not_the_best_test(tmp_path):
    table = table_of(
        tmp_path,
        [
            record(variant="a", val=0.50, test=0.30),
            record(variant="b", val=0.40, test=0.60),
            record(variant="c", status="failed"),  # no ok run: never selected
        ],
    )
    assert dict(zip(table.variant, table.selected)) == {"a": True, "b": False, "c": False}


def test_averages_need_every_task_and_use_the_selected_variants(tmp_path):
    accuracy = dict(zip(TASKS6, (0.30, 0.60, 0.55, 0.40, 0.70, 0.50)))
    records = [record(task=t, model="full", profile="lra", test=a) for t, a in accuracy.items()]
    records += [record(task=t, model="five", profile="lra", test=accuracy[t]) for t in TASKS5]
    records += [record(task=t, model="four", profile="lra", test=0.5) for t in TASKS5[:4]]
    # A second, worse-validating variant of one task must not enter the average.
    records.append(
        record(task="listops", model="full", profile="lra", variant="v2", val=0.1, test=0.99)
    )
    table = table_of(tmp_path, records)
    mean5 = 100 * sum(accuracy[t] for t in TASKS5) / 5
    mean6 = 100 * sum(accuracy.values()) / 6
    full = table[(table.model == "full") & table.selected]
    assert full.avg5.tolist() == pytest.approx([mean5] * 6)
    assert full.avg6.tolist() == pytest.approx([mean6] * 6)
    assert pd.isna(row(table, model="full", variant="v2").avg5)  # not selected: no average
    five = table[table.model == "five"]
    assert five.avg5.tolist() == pytest.approx([mean5] * 5) and five.avg6.isna().all()
    assert table[table.model == "four"][["avg5", "avg6"]].isna().all().all()


def test_parameter_budget_against_the_transformer_of_the_same_task_profile_protocol(tmp_path):
    table = table_of(
        tmp_path,
        [
            record(model="transformer", parameters=1000),
            record(model="at_budget", parameters=1100),
            record(model="over", parameters=1111),
            record(model="over", profile="lra", parameters=1111),  # no lra Transformer
            record(model="transformer", profile="lra", protocol="spt-causal", parameters=500),
            record(model="spt", profile="lra", protocol="spt-causal", parameters=1000),
        ],
    )
    assert row(table, model="transformer", profile="mini").params_vs_transformer == 1.0
    at_budget = row(table, model="at_budget")
    assert at_budget.params_vs_transformer == pytest.approx(1.1)
    assert at_budget.over_budget is False
    over = row(table, model="over", profile="mini")
    assert over.params_vs_transformer == pytest.approx(1.111) and over.over_budget is True
    alone = row(table, model="over", profile="lra")
    assert pd.isna(alone.params_vs_transformer) and alone.over_budget is None
    spt = row(table, model="spt")
    assert spt.params_vs_transformer == 2.0 and spt.over_budget is True


def test_published_numbers_sit_beside_lra_rows_only(tmp_path):
    table = table_of(
        tmp_path,
        [
            record(profile="lra", test=0.40),
            record(profile="mini", test=0.40),
            record(profile="lra", task="pathx", test=0.5, majority=0.5),
            record(profile="lra", test=0.60, protocol="spt-causal"),
            record(profile="lra", model="luna", test=0.38),
            record(profile="lra", model="not_published", test=0.38),
        ],
    )
    lra = row(table, model="transformer", profile="lra", protocol="scratch", task="listops")
    assert lra.published_acc == 36.37 and lra.diff_vs_published == pytest.approx(3.63)
    assert lra.published_avg5 == 54.39 and pd.isna(lra.published_avg6)
    assert lra.published_source == "LRA paper Table 1"
    mini = row(table, profile="mini")
    assert pd.isna(mini.published_acc) and mini.published_source is None
    pathx = row(table, task="pathx")
    assert pd.isna(pathx.published_acc) and "pathx: FAIL" in pathx.published_source
    spt = row(table, protocol="spt-causal")
    assert spt.published_acc == 59.15 and spt.published_avg6 == 81.81
    assert row(table, model="luna").published_acc == 37.98  # published as luna_256
    assert pd.isna(row(table, model="not_published").published_acc)
    assert "published 36.37% (+3.63)" in format_row(lra)


def test_majority_and_chance_rates(tmp_path):
    table = table_of(
        tmp_path, [record(task="listops", majority=0.165), record(task="text", majority=0.5)]
    )
    listops, text = row(table, task="listops"), row(table, task="text")
    assert (listops.majority_rate, listops.chance_rate) == (16.5, 10.0)
    assert (text.majority_rate, text.chance_rate) == (50.0, 50.0)
    assert listops.above_majority == pytest.approx(40.0 - 16.5)


def test_csv_has_the_schema_after_a_header_naming_commit_and_machines(tmp_path):
    write_all(
        tmp_path,
        [
            record(seed=0, commit="aaaaaaaaaaaaaaaa", device="AMD EPYC"),
            record(seed=1, commit="bbbbbbbbbbbbbbbb", device="NVIDIA H100 80GB HBM3"),
            record(model="hyena", parameters=1500, seed=0),
        ],
    )
    write_leaderboard(tmp_path, plot=False)
    lines = (tmp_path / "leaderboard.csv").read_text().splitlines()
    header = [line for line in lines if line.startswith("# ")]
    assert lines[: len(header)] == header and len(header) == 4
    text = "\n".join(header)
    commit = git_state()["commit"]
    assert "schema 1" in text and f"git {commit}" in text
    assert f"on {cpu_name()} ({os.cpu_count()} cores), from 3 run records" in text
    assert "the runs: git 0123456789ab aaaaaaaaaaaa bbbbbbbbbbbb" in text
    assert "devices: AMD EPYC, NVIDIA H100 80GB HBM3" in text
    assert lines[len(header)] == ",".join(COLUMNS)
    table = read_leaderboard(tmp_path / "leaderboard.csv")
    assert list(table.columns) == COLUMNS
    transformer = row(table, model="transformer")
    assert transformer.devices == "AMD EPYC; NVIDIA H100 80GB HBM3"
    assert transformer.git_commits == "aaaaaaaaaaaa bbbbbbbbbbbb"
    assert (transformer.seeds, transformer.test_acc_std) == (2, 0.0)
    hyena = row(table, model="hyena")
    assert hyena.params_vs_transformer == 1.5 and bool(hyena.over_budget) is True


def test_markdown_ranks_models_and_flags_the_budget(tmp_path):
    write_all(
        tmp_path,
        [
            record(model="transformer", test=0.38),
            record(model="mamba2", test=0.44, parameters=1500),
            record(model="fnet", test=0.33, parameters=600),
        ],
    )
    write_leaderboard(tmp_path, plot=False)
    text = (tmp_path / "leaderboard.md").read_text()
    assert "## Profile `mini`, protocol `scratch`" in text
    assert "| 1 | mamba2 | 44.00 | - | - | 1.50x OVER |" in text
    assert "| 2 | transformer | 38.00 | - | - | 1.00x |" in text
    assert "| 3 | fnet | 33.00 | - | - | 0.60x |" in text
