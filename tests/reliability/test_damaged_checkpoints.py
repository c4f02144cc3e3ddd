"""Case 2: a checkpoint that does not load is named, moved aside, and the run goes on from the
last good state (or step 0), saying so; the result is the one an undisturbed run gives."""

from __future__ import annotations

import pytest
import torch

from lra_bench.checkpoints import read_best
from lra_bench.run import run
from tests.reliability.conftest import (
    STANDARD,
    Killed,
    repeated_part,
    run_dir_of,
    smoke,
    stop_at_call,
)


def stopped_run(results, data_root, monkeypatch, call=6):
    """The standard run stopped during step `call` (checkpoints at 2, 3, 4 before step 6)."""
    stop_at_call(monkeypatch, call=call)
    with pytest.raises(Killed):
        run(*smoke(results, data_root, *STANDARD))
    monkeypatch.undo()
    return run_dir_of(results)


def truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def test_a_truncated_last_pt_is_set_aside_and_previous_pt_resumed(
    tmp_path, data_root, straight, monkeypatch, capsys
):
    run_dir = stopped_run(tmp_path, data_root, monkeypatch)
    truncate(run_dir / "last.pt")
    capsys.readouterr()
    resumed = run(*smoke(tmp_path, data_root, *STANDARD))
    out = capsys.readouterr().out
    assert f"checkpoint {run_dir / 'last.pt'} does not load (not a readable checkpoint" in out
    (moved,) = run_dir.glob("last.pt.damaged-*")
    assert f"moved aside to {moved.name}" in out
    assert "resuming from step 3 of 6 (previous.pt)" in out
    assert resumed.resumes == [
        {
            "from_step": 3,
            "at": resumed.resumes[0]["at"],
            "checkpoint": "previous.pt",
            "set_aside": [f"last.pt -> {moved.name}"],
        }
    ]
    assert repeated_part(resumed) == repeated_part(straight)


def test_with_no_checkpoint_that_loads_the_run_starts_again_from_step_0(
    tmp_path, data_root, straight, monkeypatch, capsys
):
    run_dir = stopped_run(tmp_path, data_root, monkeypatch)
    (run_dir / "last.pt").write_text("garbage")
    torch.save({"not": "a training state"}, run_dir / "previous.pt")
    capsys.readouterr()
    resumed = run(*smoke(tmp_path, data_root, *STANDARD))
    out = capsys.readouterr().out
    assert "last.pt does not load (not a readable checkpoint" in out
    assert "previous.pt does not load (not a training state (lacks format, model" in out
    assert "no checkpoint of this run loads: starting from step 0" in out
    assert resumed.resumes[0]["from_step"] == 0 and len(resumed.resumes[0]["set_aside"]) == 2
    assert repeated_part(resumed) == repeated_part(straight)


def test_a_state_of_another_model_is_set_aside(tmp_path, data_root, straight, monkeypatch, capsys):
    run_dir = stopped_run(tmp_path, data_root, monkeypatch, call=4)
    state = torch.load(run_dir / "last.pt", weights_only=True)
    state["model"] = {"some.other.weight": torch.zeros(3)}
    torch.save(state, run_dir / "last.pt")
    capsys.readouterr()
    resumed = run(*smoke(tmp_path, data_root, *STANDARD))
    out = capsys.readouterr().out
    assert "last.pt does not load (RuntimeError: Error(s) in loading state_dict" in out
    assert "resuming from step 2 of 6 (previous.pt)" in out
    assert repeated_part(resumed) == repeated_part(straight)


def test_a_damaged_best_pt_is_set_aside_and_rewritten(
    tmp_path, data_root, straight, monkeypatch, capsys
):
    run_dir = stopped_run(tmp_path, data_root, monkeypatch, call=5)
    (run_dir / "best.pt").write_text("garbage")
    capsys.readouterr()
    resumed = run(*smoke(tmp_path, data_root, *STANDARD))
    out = capsys.readouterr().out
    assert f"{run_dir / 'best.pt'}: not a readable checkpoint" in out
    assert "and rewritten from the checkpoint" in out
    assert read_best(run_dir / "best.pt")["step"] == resumed.best_step
    assert len(list(run_dir.glob("best.pt.damaged-*"))) == 1
    assert repeated_part(resumed) == repeated_part(straight)


def test_force_with_a_damaged_checkpoint_trains_from_step_0(tmp_path, data_root, straight):
    first = run(*smoke(tmp_path, data_root, *STANDARD))
    run_dir = run_dir_of(tmp_path)
    (run_dir / "last.pt").write_bytes(b"\x00" * 64)
    (run_dir / "best.pt").write_text("garbage")
    again = run(*smoke(tmp_path, data_root, *STANDARD, "force=true"))
    assert first.status == again.status == "ok"
    assert repeated_part(again) == repeated_part(straight)
