"""Cases 3 and 10: a leaderboard counts the runs of its own result set, each once; a record that
fails the schema is left out and listed, never counted and never an error; concurrent refreshes
and runs lose no record and leave no torn or stale table."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from lra_bench.leaderboard import load_runs, read_leaderboard, write_leaderboard
from lra_bench.records import SCHEMA_VERSION, RunRecord


def record(seed=0, status="ok", test=0.4, variant="v1", model="transformer", **extra) -> dict:
    return {
        "task": "listops",
        "model": model,
        "profile": "smoke",
        "seed": seed,
        "config_hash": f"{variant}-{seed}",
        "variant": variant,
        "status": status,
        "error": None if status == "ok" else "it broke",
        "test_accuracy": test if status == "ok" else None,
        "val_accuracy": test,
        "test_majority_rate": 0.17,
        "schema": SCHEMA_VERSION,
        **extra,
    }


def write(results, data, name=None) -> os.PathLike:
    """Writes a record where a run of it would be: results/runs/<task>/<model>/<profile>/<run>."""
    run_dir = (
        results
        / "runs"
        / data["task"]
        / data["model"]
        / data["profile"]
        / (name or f"seed{data['seed']}-{data['config_hash']}")
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunRecord.from_dict(data).write(run_dir)


def test_a_result_set_nested_in_another_is_not_counted_by_it(tmp_path):
    write(tmp_path, record(seed=0, test=0.4))
    write(tmp_path / "zoo_mini", record(seed=0, test=0.4))  # results_dir=R/zoo_mini
    write(tmp_path / "runs" / "old_copy", record(seed=0, test=0.9))  # deeper than a run folder
    outer = write_leaderboard(tmp_path, plot=False)
    inner = write_leaderboard(tmp_path / "zoo_mini", plot=False)
    assert outer.seeds.tolist() == [1] and outer.test_acc_mean.tolist() == [40.0]
    assert inner.seeds.tolist() == [1]


def test_the_same_run_twice_in_one_result_set_is_counted_once(tmp_path):
    write(tmp_path, record(seed=0, status="failed"), name="seed0-copy-a")
    first = write(tmp_path, record(seed=0, test=0.4), name="seed0-copy-b")
    table = write_leaderboard(tmp_path, plot=False)
    assert (table.seeds.tolist(), table.failed.tolist()) == ([1], [0])
    (line,) = table.attrs["skipped"]
    assert "seed0-copy-a" in line and f"the same run as {first}; counted once" in line


BAD_RECORDS = [
    ("{ not json", "not valid JSON"),
    ("42", "a run record is a JSON object, got int"),
    ('{"schema": 2}', "run record lacks task"),
    (None, "status ok needs test_accuracy in [0, 1], got None"),  # null test accuracy
    ("great", "status 'great' not in"),
    ("seed", "seed must be int, got '0'"),
]


@pytest.mark.parametrize("content, reason", BAD_RECORDS, ids=[r for _, r in BAD_RECORDS])
def test_a_record_failing_the_schema_is_listed_and_never_counted(tmp_path, content, reason):
    import json

    good = write(tmp_path, record(seed=1, test=0.5))
    bad = write(tmp_path, record(seed=0)).parent / "record.json"
    if content is None:
        bad.write_text(json.dumps({**record(seed=0), "test_accuracy": None}))
    elif content == "great":
        bad.write_text(json.dumps({**record(seed=0), "status": "great"}))
    elif content == "seed":
        bad.write_text(json.dumps({**record(seed=0), "seed": "0"}))
    else:
        bad.write_text(content)
    table = write_leaderboard(tmp_path, plot=False)
    assert table.seeds.tolist() == [1] and table.test_acc_mean.tolist() == [50.0]
    (line,) = table.attrs["skipped"]
    assert line.startswith(str(bad)) and reason in line
    assert good.exists() and bad.exists()  # nothing is deleted
    csv = read_leaderboard(tmp_path / "leaderboard.csv")
    assert csv.seeds.tolist() == [1]


def test_the_leaderboard_command_lists_what_it_left_out_and_refuses_a_missing_folder(
    tmp_path, capsys
):
    from lra_bench.cli import main

    write(tmp_path, record(seed=1, test=0.5))
    (tmp_path / "runs" / "listops" / "transformer" / "smoke" / "seed9-x").mkdir()
    (
        tmp_path / "runs" / "listops" / "transformer" / "smoke" / "seed9-x" / "record.json"
    ).write_text("42")
    main(["leaderboard", "--results", str(tmp_path), "--no-plot"])
    out, err = capsys.readouterr()
    assert "over 1 seed(s)" in out
    assert "left out" in err and "seed9-x/record.json" in err
    with pytest.raises(SystemExit) as exit_:
        main(["leaderboard", "--results", str(tmp_path / "typo")])
    assert exit_.value.code == 2
    assert f"--results {tmp_path / 'typo'}: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def _write_and_refresh(results, seed):
    write(results, record(seed=seed, test=0.01 * seed))
    write_leaderboard(results, plot=False)


def _refresh(results, times):
    for _ in range(times):
        write_leaderboard(results, plot=False)


def _slow_refresh(results, has_read):
    """A refresh that takes 3 s between reading the records and writing the table: without a
    lock over both, every run that finishes meanwhile is missing from the table it writes last."""
    import lra_bench.leaderboard as leaderboard

    aggregate = leaderboard.aggregate

    def slow_aggregate(runs):
        has_read.set()
        time.sleep(3)
        return aggregate(runs)

    leaderboard.aggregate = slow_aggregate
    write_leaderboard(results, plot=False)


def test_concurrent_runs_and_refreshes_lose_no_record_and_leave_the_latest_table(tmp_path):
    context = multiprocessing.get_context("fork")
    has_read = context.Event()
    slow = context.Process(target=_slow_refresh, args=(tmp_path, has_read))
    slow.start()
    assert has_read.wait(60)
    writers = [context.Process(target=_write_and_refresh, args=(tmp_path, s)) for s in range(8)]
    refreshers = [context.Process(target=_refresh, args=(tmp_path, 2)) for _ in range(3)]
    for process in writers + refreshers:
        process.start()
    for process in [slow, *writers, *refreshers]:
        process.join(120)
        assert process.exitcode == 0
    assert len(list(tmp_path.glob("runs/*/*/*/*/record.json"))) == 8
    # The table on disk is whole and counts every record: the last refresh read them all.
    csv = read_leaderboard(tmp_path / "leaderboard.csv")
    assert csv.seeds.tolist() == [8]
    assert csv.test_acc_mean.tolist() == [pytest.approx(3.5)]
    assert (
        "| listops | transformer | smoke | scratch | 3.50 ± 2.45 | 8 | 0 |"
        in (tmp_path / "leaderboard.md").read_text()
    )
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_load_runs_reads_one_row_per_valid_record(tmp_path):
    write(tmp_path, record(seed=0, test=0.4))
    write(tmp_path, record(seed=1, status="oom"))
    runs = load_runs(tmp_path)
    assert sorted(runs.status) == ["ok", "oom"] and runs.attrs["skipped"] == []
