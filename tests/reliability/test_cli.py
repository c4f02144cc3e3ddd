"""Cases 8, 9 and 11: `lra-bench` answers every expected failure with one line naming the culprit
and exit status 2 (the traceback only with --debug); the speed report holds its own run's rows
unless asked to merge; overrides are taken after options."""

from __future__ import annotations

import gzip

import pytest

import lra_bench.speed.runner as runner
import tasks.release
from lra_bench.cli import main
from lra_bench.speed.settings import SpeedSettings
from tests.test_tasks_release import LISTOPS, add_file, write_archive


def fails(capsys, argv) -> str:
    """The one line `lra-bench ARGV` writes to stderr when it exits with status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_file_that_is_not_an_archive_is_named_in_one_line(tmp_path, capsys):
    archive = tmp_path / "notes.txt"
    archive.write_text("not an archive at all\n" * 100)
    err = fails(
        capsys, ["data", "import", str(archive), "--out", str(tmp_path / "data"), "--quiet"]
    )
    assert err.startswith(f"lra-bench: error: {archive}: not a readable (gzipped) tar archive")
    assert "nothing was imported" in err
    assert list((tmp_path / "data").iterdir()) == []


def test_a_truncated_gzip_is_named_in_one_line_and_imports_nothing(tmp_path, capsys):
    archive = write_archive(tmp_path / "lra_release.gz")
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "data"
    err = fails(capsys, ["data", "import", str(archive), "--out", str(out), "--quiet"])
    assert f"{archive}: not a readable (gzipped) tar archive, or cut short" in err
    assert list(out.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path):
    archive = tmp_path / "broken.gz"
    archive.write_bytes(gzip.compress(b"x" * 1000)[:30])
    with pytest.raises(ValueError, match="not a readable"):
        main(["--debug", "data", "import", str(archive), "--out", str(tmp_path), "--quiet"])
    with pytest.raises(ValueError, match="not a readable"):  # --debug anywhere on the line
        main(["data", "import", str(archive), "--out", str(tmp_path), "--quiet", "--debug"])


def test_a_missing_archive_and_missing_arguments_are_one_line(tmp_path, capsys):
    missing = tmp_path / "nowhere.gz"
    err = fails(capsys, ["data", "import", str(missing), "--out", str(tmp_path)])
    assert str(missing) in err and "No such file or directory" in err
    err = fails(capsys, ["data", "import"])
    assert "the following arguments are required: archive, --out" in err


def test_tarfile_data_filter_is_a_second_line_of_defence(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tasks.release, "member_problem", lambda member: None)
    archive = write_archive(
        tmp_path / "evil.gz", lambda tar: add_file(tar, "lra_release/../../escape.txt", b"x")
    )
    err = fails(capsys, ["data", "import", str(archive), "--out", str(tmp_path / "d"), "--quiet"])
    assert "refusing archive member 'lra_release/../../escape.txt' (tarfile's data filter" in err
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "d" / "lra_release").exists()


@pytest.mark.parametrize("lengths", ["0", "-5", "abc", "1024,0"])
def test_speed_refuses_bad_lengths_in_one_line(tmp_path, capsys, lengths):
    err = fails(capsys, ["speed", "--lengths", lengths, "--out", str(tmp_path)])
    assert "argument --lengths: expected comma-separated positive integers" in err
    assert repr(lengths) in err
    assert list(tmp_path.iterdir()) == []


def test_speed_refuses_an_unknown_model_in_one_line(tmp_path, capsys):
    err = fails(capsys, ["speed", "--models", "nosuch", "--out", str(tmp_path)])
    assert "--models: no conf/model config named nosuch; choose from" in err


def fake_measurements(monkeypatch, status):
    """The runner without its worker processes: every measurement ends with `status`."""
    machine = {
        "device": "cpu",
        "device_name": "cpu0",
        "precision": "fp32",
        "cpu": "cpu0",
        "cores": 2,
        "threads": 1,
        "torch": "t",
        "python": "p",
    }
    monkeypatch.setattr(runner, "probe_device", lambda settings: dict(machine))

    def measure(model, length, settings, machine):
        row = {**runner.base_row(model, length, settings, machine), "status": status}
        if status == "ok":
            row.update(steps_per_sec=2.0, steps_per_sec_min=1.5, steps_per_sec_max=2.5)
            row.update(peak_mem_gb=0.1)
        else:
            row["error"] = "it crashed"
        return row

    monkeypatch.setattr(runner, "measure", measure)


def test_a_speed_run_reports_its_own_rows_unless_asked_to_merge(tmp_path, monkeypatch):
    settings = dict(models=["transformer"], size="tiny", batch=2)
    fake_measurements(monkeypatch, "failed")
    runner.run_speed(SpeedSettings(lengths=[64], **settings), tmp_path, log=lambda line: None)
    fake_measurements(monkeypatch, "ok")
    table = runner.run_speed(
        SpeedSettings(lengths=[128], **settings), tmp_path, log=lambda line: None
    )
    assert table.length.tolist() == [128]
    assert runner.read_speed_csv(tmp_path / "speed_memory.csv").length.tolist() == [128]
    earlier = runner.read_speed_csv(tmp_path / "speed_memory.previous.csv")
    assert (earlier.length.tolist(), earlier.status.tolist()) == ([64], ["failed"])
    merged = runner.run_speed(
        SpeedSettings(lengths=[256], **settings),
        tmp_path,
        log=lambda line: None,
        keep_earlier_rows=True,
    )
    assert sorted(merged.length.tolist()) == [128, 256]


def test_data_stats_takes_overrides_after_its_options(tmp_path, capsys):
    folder = tmp_path / "listops-1000"
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"basic_{split}.tsv").write_text(LISTOPS)
    capsys.readouterr()
    main(
        [
            "data",
            "stats",
            "listops",
            "--profile",
            "smoke",
            f"task.data.data_dir={folder}",
            "--data-root",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert "train        2 examples (official 96,000)" in capsys.readouterr().out
    err = fails(
        capsys,
        [
            "data",
            "stats",
            "listops",
            "--profile",
            "smoke",
            f"task.data.data_dir={tmp_path / 'nowhere'}",
            "--data-root",
            str(tmp_path),
        ],
    )
    assert f"{tmp_path / 'nowhere'} lacks basic_train.tsv" in err
    err = fails(capsys, ["data", "stats", "listops", "--profile", "smoke", "--bogus"])
    assert "unrecognized arguments: --bogus" in err
