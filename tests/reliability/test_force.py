"""Case 1: `force=true` trains again from step 0 in a clean run folder; the earlier record stays
until the new one replaces it, and a rerun that does not end ok never replaces an ok one."""

from __future__ import annotations

import json

import pytest

from lra_bench.records import RunRecord
from lra_bench.run import FORCED_RERUN_NAME, run
from tests.reliability.conftest import (
    STANDARD,
    Killed,
    repeated_part,
    run_dir_of,
    run_main,
    smoke,
    smoke_overrides,
    stop_at_call,
)


def test_force_trains_again_from_step_0(tmp_path, data_root, straight, monkeypatch, capsys):
    results = tmp_path / "results"
    first = run(*smoke(results, data_root, *STANDARD))
    calls = stop_at_call(monkeypatch, call=0)  # counts the optimizer steps, stops none
    capsys.readouterr()
    again = run(*smoke(results, data_root, *STANDARD, "force=true"))
    out = capsys.readouterr().out
    assert "force=true: training from step 0 (removed last.pt, previous.pt, best.pt)" in out
    assert "the earlier record (status ok) stays until this run's replaces it" in out
    assert len(calls) == 6  # every step trained again, none resumed
    assert again.resumes == [] and again.started_at >= first.finished_at
    assert repeated_part(again) == repeated_part(straight)
    assert RunRecord.read(run_dir_of(results) / "record.json").started_at == again.started_at


def test_an_interrupted_forced_run_leaves_the_earlier_record_in_place(
    tmp_path, data_root, monkeypatch, capsys
):
    results = tmp_path / "results"
    first = run(*smoke(results, data_root, *STANDARD))
    path = run_dir_of(results) / "record.json"
    before = path.read_text()
    stop_at_call(monkeypatch, call=3)
    with pytest.raises(Killed):
        run(*smoke(results, data_root, *STANDARD, "force=true"))
    assert path.read_text() == before
    monkeypatch.undo()
    capsys.readouterr()
    again = run(*smoke(results, data_root, *STANDARD))  # not forced: the ok record stands
    assert "already finished" in capsys.readouterr().out
    assert again.finished_at == first.finished_at


def test_a_forced_rerun_that_fails_never_replaces_an_ok_record(
    tmp_path, data_root, monkeypatch, capsys
):
    results = tmp_path / "results"
    overrides = smoke_overrides(results, data_root, *STANDARD)
    assert run_main(monkeypatch, capsys, overrides)[0] == 0
    path = run_dir_of(results) / "record.json"
    before = path.read_text()

    def broken():
        raise RuntimeError("the new code is broken")

    stop_at_call(monkeypatch, call=2, action=broken)
    code, out, err = run_main(monkeypatch, capsys, [*overrides, "force=true"])
    assert code == 1
    assert "force=true: the rerun ended failed; the earlier ok record stays in" in err
    assert path.read_text() == before
    rerun = json.loads((path.parent / FORCED_RERUN_NAME).read_text())
    assert rerun["status"] == "failed" and "the new code is broken" in rerun["error"]
    assert "over 1 seed(s), 0 failed" in out  # the leaderboard counts the ok record only
