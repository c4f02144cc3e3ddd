import json

import pandas as pd
import pytest

from lra_bench.leaderboard import aggregate, load_runs, read_leaderboard, write_leaderboard
from lra_bench.records import SCHEMA_VERSION, RunRecord


def record(
    task="listops", model="transformer", profile="mini", seed=0, status="ok", test=0.4, variant="v1"
):
    return {
        "variant": variant,
        "config_hash": f"{variant}-{seed}",
        "error": None if status == "ok" else "it broke",
        "schema": SCHEMA_VERSION,
        "task": task,
        "model": model,
        "profile": profile,
        "seed": seed,
        "status": status,
        "test_accuracy": test if status == "ok" else None,
        "val_accuracy": test,
        "test_majority_rate": 0.17,
        "parameters": 1000,
        "steps_per_second": 10.0,
    }


def write_all(root, records):
    for i, r in enumerate(records):
        run_dir = root / "runs" / f"run{i}"
        run_dir.mkdir(parents=True)
        RunRecord.from_dict(r).write(run_dir)


def test_record_round_trip_and_atomic_write(tmp_path):
    path = RunRecord.from_dict(record()).write(tmp_path)
    assert RunRecord.read(path).test_accuracy == 0.4
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary left


def test_invalid_records_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(ValueError, match="status 'great' not in"):
        RunRecord.from_dict({**record(), "status": "great"})
    with pytest.raises(ValueError, match="status ok needs test_accuracy in"):
        RunRecord.from_dict({**record(), "test_accuracy": None})
    bad = tmp_path / "record.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        RunRecord.read(bad)
    bad.write_text(json.dumps({"schema": SCHEMA_VERSION, "task": "listops"}))
    with pytest.raises(ValueError, match="lacks model, profile, seed, config_hash, variant"):
        RunRecord.read(bad)
    bad.write_text("42")
    with pytest.raises(ValueError, match="a run record is a JSON object, got int"):
        RunRecord.read(bad)


def test_aggregate_mean_std_seeds_failed_and_profiles_never_mix(tmp_path):
    write_all(
        tmp_path,
        [
            record(seed=0, test=0.40),
            record(seed=1, test=0.50),
            record(seed=2, status="failed"),
            record(seed=3, status="diverged"),
            record(profile="smoke", seed=0, test=0.10),
        ],
    )
    table = aggregate(load_runs(tmp_path)).set_index("profile")
    assert list(table.index) == ["mini", "smoke"]
    mini = table.loc["mini"]
    assert mini.test_acc_mean == pytest.approx(45.0)
    assert mini.test_acc_std == pytest.approx(pd.Series([40.0, 50.0]).std())
    assert (mini.seeds, mini.failed) == (2, 2)
    assert mini.above_majority == pytest.approx(45.0 - 17.0)
    assert table.loc["smoke"].test_acc_mean == pytest.approx(10.0)


def test_runs_of_different_variants_are_never_averaged_together(tmp_path):
    write_all(tmp_path, [record(seed=0, test=0.4), record(seed=0, test=0.2, variant="v2")])
    table = aggregate(load_runs(tmp_path))
    assert sorted(zip(table.variant, table.test_acc_mean, table.seeds)) == [
        ("v1", 40.0, 1),
        ("v2", 20.0, 1),
    ]


def test_write_leaderboard_writes_csv_markdown_and_plot(tmp_path):
    write_all(tmp_path, [record(seed=0), record(model="other", seed=0, test=0.3)])
    write_leaderboard(tmp_path)
    csv = read_leaderboard(tmp_path / "leaderboard.csv")
    assert list(csv.model) == ["other", "transformer"]
    assert (
        "| listops | transformer | mini | scratch | 40.00 | 1 | 0 |"
        in (tmp_path / "leaderboard.md").read_text()
    )
    assert (tmp_path / "plots" / "leaderboard_mini.png").stat().st_size > 1000


def test_row_line_says_below_when_under_the_majority_rate():
    import pandas as pd

    from lra_bench.leaderboard import format_row

    row = pd.Series(
        dict(
            task="pathfinder",
            model="transformer",
            profile="mini",
            variant="abc",
            test_acc_mean=49.8,
            test_acc_std=float("nan"),
            seeds=1,
            failed=0,
            majority_rate=50.2,
            above_majority=-0.4,
        )
    )
    assert "(0.4 points below)" in format_row(row)
    assert "(2.5 points above)" in format_row(row.copy().replace(-0.4, 2.5))
    # A row whose every run failed (e.g. one job of a sweep) states no accuracy.
    failed = row.copy()
    failed[["test_acc_mean", "seeds", "failed", "above_majority"]] = [
        float("nan"),
        0,
        2,
        float("nan"),
    ]
    assert format_row(failed) == "pathfinder | transformer | mini | abc: no run ok, 2 failed"
