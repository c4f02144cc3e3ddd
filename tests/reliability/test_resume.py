"""Cases 11 and 12: a resumed run says so, records it, counts the time of its earlier processes,
and goes on bit for bit: every generator the run draws from is saved and restored."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lra_bench.engine as engine
from lra_bench.checkpoints import capture_rng, read_state, restore_rng, write_state
from lra_bench.run import run
from tests.reliability.conftest import (
    STANDARD,
    Killed,
    repeated_part,
    run_dir_of,
    smoke,
    stop_at_call,
)


def test_a_resumed_run_says_so_records_it_and_repeats_the_straight_run(
    tmp_path, data_root, straight, monkeypatch, capsys
):
    results = tmp_path / "results"
    stop_at_call(monkeypatch, call=5)  # during step 5: the last checkpoint is step 4's
    with pytest.raises(Killed):
        run(*smoke(results, data_root, *STANDARD))
    assert not (run_dir_of(results) / "record.json").exists()
    monkeypatch.undo()
    capsys.readouterr()
    resumed = run(*smoke(results, data_root, *STANDARD))
    assert "resuming from step 4 of 6 (last.pt)" in capsys.readouterr().out
    assert [(r["from_step"], r["checkpoint"], r["set_aside"]) for r in resumed.resumes] == [
        (4, "last.pt", [])
    ]
    assert resumed.wall_seconds >= resumed.train_seconds > 0
    assert repeated_part(resumed) == repeated_part(straight)


def _noisy_step(real_step):
    """A training step whose loss (kept in the history) draws on Python's, numpy's and torch's
    generators, as data augmentation or a random-feature model would."""

    def step(*args, **kwargs):
        noise = random.random() + np.random.rand() + torch.rand(()).item()
        return real_step(*args, **kwargs) + noise

    return step


def test_every_generator_is_restored_on_resume(tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(engine, "train_step", _noisy_step(engine.train_step))
    straight = run(*smoke(tmp_path / "straight", data_root, *STANDARD))
    results = tmp_path / "resumed"
    noisy = engine.train_step
    stop_at_call(monkeypatch, call=4)  # wraps the noisy step: stops during step 4
    with pytest.raises(Killed):
        run(*smoke(results, data_root, *STANDARD))
    monkeypatch.setattr(engine, "train_step", noisy)
    resumed = run(*smoke(results, data_root, *STANDARD))
    assert resumed.resumes[0]["from_step"] == 3
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    assert repeated_part(resumed) == repeated_part(straight)


def test_generator_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian is part of numpy's state too
    write_state({"rng": capture_rng()}, tmp_path)
    expected = (random.random(), np.random.randn(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(torch.load(tmp_path / "last.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.randn(), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generators_are_saved_and_restored(tmp_path):
    torch.cuda.manual_seed_all(5)
    torch.rand(1, device="cuda")
    state = capture_rng()
    assert len(state["cuda"]) == torch.cuda.device_count()
    expected = torch.rand(4, device="cuda")
    torch.cuda.manual_seed_all(9)
    restore_rng(state)
    assert torch.equal(torch.rand(4, device="cuda"), expected)


def test_a_checkpoint_holds_every_generator(straight):
    state = read_state(run_dir_of(Path(straight.config["results_dir"])) / "last.pt")
    assert sorted(state["rng"]) == ["cuda", "numpy", "python", "torch"]
    assert state["progress"]["step"] == 6
