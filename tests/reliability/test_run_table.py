"""`lra-bench records list DIR`: one line per run record, with its wall time and threads."""

from __future__ import annotations

import csv

from lra_bench.cli import main as cli_main
from tests.reliability.test_leaderboard import record, write


def test_records_list_writes_a_line_per_run_with_its_wall_time(tmp_path, capsys):
    write(
        tmp_path,
        record(
            seed=1,
            test=0.4125,
            model="s4d",
            wall_seconds=90.0,
            environment={"threads": 1, "malloc": "glibc: freed blocks up to 1 GiB kept"},
            git_commit="0123456789abcdef",
            git_dirty=False,
        ),
    )
    write(tmp_path, record(seed=0, status="failed", model="s4d", wall_seconds=6.0))
    write(tmp_path, record(seed=0, test=0.38, model="mamba", steps_per_second=2.34567))
    assert cli_main(["records", "list", str(tmp_path)]) in (None, 0)
    assert "runs.csv" in capsys.readouterr().out
    with open(tmp_path / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["seed"], r["status"]) for r in rows] == [
        ("mamba", "0", "ok"),
        ("s4d", "0", "failed"),
        ("s4d", "1", "ok"),
    ]
    mamba, failed, s4d = rows
    assert mamba["steps_per_second"] == "2.346" and mamba["malloc"] == "default"
    assert failed["test_accuracy"] == "" and failed["wall_minutes"] == "0.1"
    assert s4d["test_accuracy"] == "41.25" and s4d["wall_minutes"] == "1.5"
    assert s4d["threads"] == "1" and s4d["git_commit"] == "0123456"
    table = (tmp_path / "runs.md").read_text().splitlines()
    assert table[2].startswith("3 run records")
    assert len([line for line in table if line.startswith("| listops |")]) == 3


def test_the_settings_column_shows_what_a_run_set_beyond_its_task_model_profile_and_seed(
    tmp_path,
):
    overrides = [
        "model=s4d",
        "task=pathfinder",
        "profile=mini",
        "seed=0",
        "task.data.generate.count=20000",
        "+model.backbone.encoder=linear",
        "+model.backbone.pixel_norm=[0.0,1.0]",
        "pretrain=masked",
        "results_dir=/work/pf_results",
        "progress=false",
        "kernels.per_op={ssd: reference}",
    ]
    write(tmp_path, record(overrides=overrides))
    write(tmp_path, record(seed=1, overrides=["seed=1", "trainer.lr=a|b"]))
    assert cli_main(["records", "list", str(tmp_path)]) in (None, 0)
    with open(tmp_path / "runs.csv") as handle:
        first, second = list(csv.DictReader(handle))
    assert first["settings"] == (
        "task.data.generate.count=20000 +model.backbone.encoder=linear"
        " +model.backbone.pixel_norm=[0.0,1.0] pretrain=masked"
    )
    assert second["settings"] == "trainer.lr=a|b"
    table = (tmp_path / "runs.md").read_text()
    assert "| trainer.lr=a\\|b |" in table  # a pipe in a value never splits the row
    assert "| pretrain=masked" not in table and "pretrain=masked |" in table
