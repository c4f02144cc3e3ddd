"""Checkpoints every N steps and on SIGTERM / SIGUSR1 (Slurm's preemption and time-limit
signals), written atomically and durably, loaded with weights_only=True."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import tasks.files
from lra_bench.checkpoints import CheckpointError, read_state
from lra_bench.run import run
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


def test_a_checkpoint_every_n_steps_between_evaluations(tmp_path, data_root, monkeypatch):
    results = tmp_path / "results"
    stop_at_call(monkeypatch, call=6)  # during step 6; evaluation only at 6
    with pytest.raises(Killed):
        run(
            *smoke(
                results,
                data_root,
                "trainer.max_steps=6",
                "trainer.eval_every=6",
                "checkpoint_every=2",
            )
        )
    run_dir = run_dir_of(results)
    assert read_state(run_dir / "last.pt")["progress"]["step"] == 4
    assert read_state(run_dir / "previous.pt")["progress"]["step"] == 2
    assert not (run_dir / "best.pt").exists()  # no evaluation yet
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]


def test_sigterm_writes_a_checkpoint_and_stops_and_the_same_command_resumes(
    tmp_path, data_root, straight, monkeypatch, capsys
):
    results = tmp_path / "results"
    overrides = smoke_overrides(results, data_root, *STANDARD)
    stop_at_call(monkeypatch, call=2, action=lambda: os.kill(os.getpid(), signal.SIGTERM))
    code, _, err = run_main(monkeypatch, capsys, overrides)
    assert code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step 2; a checkpoint was written; the same command resumes" in err
    run_dir = run_dir_of(results)
    assert not (run_dir / "record.json").exists()  # not finished, so not a result
    assert read_state(run_dir / "last.pt")["progress"]["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    monkeypatch.undo()
    code, out, _ = run_main(monkeypatch, capsys, overrides)
    assert code == 0 and "resuming from step 2 of 6 (last.pt)" in out
    resumed = run(*smoke(results, data_root, *STANDARD))  # already finished: read back
    assert repeated_part(resumed) == repeated_part(straight)


def test_sigusr1_writes_a_checkpoint_and_training_goes_on(tmp_path, data_root, monkeypatch):
    results = tmp_path / "results"
    overrides = ["trainer.max_steps=6", "trainer.eval_every=6", "checkpoint_every=0"]
    calls = stop_at_call(monkeypatch, call=3, action=lambda: os.kill(os.getpid(), signal.SIGUSR1))
    record = run(*smoke(results, data_root, *overrides))
    assert record.status == "ok" and len(calls) == 6
    run_dir = run_dir_of(results)
    assert read_state(run_dir / "previous.pt")["progress"]["step"] == 3  # then 6 at the end
    assert read_state(run_dir / "last.pt")["progress"]["step"] == 6


def test_checkpoints_are_flushed_to_disk_before_the_rename(tmp_path, data_root, monkeypatch):
    synced = []
    real_fsync = tasks.files.fsync_path
    monkeypatch.setattr(tasks.files, "fsync_path", lambda p: (synced.append(p), real_fsync(p)))
    import lra_bench.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "fsync_path", tasks.files.fsync_path)
    run(*smoke(tmp_path, data_root, "trainer.max_steps=2", "trainer.eval_every=2"))
    run_dir = run_dir_of(tmp_path)
    names = [p.name for p in synced]
    assert ".last.pt.tmp-" + str(os.getpid()) in names  # the new state, before its rename
    assert run_dir.name in names  # the folder, after it
    assert any(n.startswith(".record.tmp-") for n in names)  # the record too


class NotATensor:
    """Pickled into a checkpoint, it would run code on load unless weights_only refuses it."""


def test_checkpoints_load_with_weights_only(tmp_path):
    torch.save({"format": 1, "model": NotATensor()}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"last\.pt: not a readable checkpoint \(Unpickl"):
        read_state(tmp_path / "last.pt")
