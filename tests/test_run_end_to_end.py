"""The Hydra app end to end on the smoke profile: records, skipping, resuming, failures."""

import json

import pytest
import torch

import lra_bench.engine as engine
from lra_bench.leaderboard import read_leaderboard
from lra_bench.records import RunRecord
from lra_bench.run import run
from lra_bench.settings_check import SettingsError
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def smoke(tmp_path, data_root, *extra):
    return compose_config(
        [
            "profile=smoke",
            f"results_dir={tmp_path}",
            f"data_root={data_root}",
            "progress=false",
            *extra,
        ]
    )


def test_run_writes_record_and_leaderboard_then_skips(tmp_path, data_root, capsys):
    record = run(smoke(tmp_path, data_root))
    assert record.status == "ok", record.traceback
    (path,) = list(tmp_path.rglob("record.json"))
    saved = RunRecord.read(path)
    assert saved.test_accuracy == record.test_accuracy
    assert 0.0 <= saved.test_accuracy <= 1.0
    assert saved.split_sizes == {"train": 256, "val": 64, "test": 64}
    assert 0.1 <= saved.test_majority_rate <= 1.0
    assert saved.kernel_backends == {"SoftmaxAttention": "attention: chunked"}
    assert saved.steps == 4 and saved.best_step in (2, 4)
    assert saved.parameters > 0 and saved.peak_memory_bytes > 0
    assert (path.parent / "best.pt").exists() and (path.parent / "config.yaml").exists()
    board = (tmp_path / "leaderboard.csv").read_text()
    assert f"listops,transformer,smoke,scratch,{saved.variant}" in board
    before = path.stat().st_mtime_ns
    capsys.readouterr()
    again = run(smoke(tmp_path, data_root))
    assert "already finished" in capsys.readouterr().out
    assert again.test_accuracy == record.test_accuracy
    assert path.stat().st_mtime_ns == before


def test_interrupted_run_resumes_to_the_same_result(tmp_path, data_root, monkeypatch):
    overrides = ["trainer.max_steps=6", "trainer.eval_every=2"]
    straight = run(smoke(tmp_path / "straight", data_root, *overrides))
    real_evaluate = engine.evaluate
    calls = {"n": 0}

    def crash_on_second_evaluation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", crash_on_second_evaluation)
    crashed = run(smoke(tmp_path / "resumed", data_root, *overrides))
    assert crashed.status == "failed" and "simulated crash" in crashed.error
    monkeypatch.setattr(engine, "evaluate", real_evaluate)
    resumed = run(smoke(tmp_path / "resumed", data_root, *overrides))
    assert resumed.status == "ok"
    assert [h["step"] for h in resumed.history] == [2, 4, 6]
    assert resumed.history == straight.history
    best = {
        name: torch.load(p / "best.pt")["model"]
        for name, p in [
            ("straight", next((tmp_path / "straight").rglob("best.pt")).parent),
            ("resumed", next((tmp_path / "resumed").rglob("best.pt")).parent),
        ]
    }
    for key, value in best["straight"].items():
        torch.testing.assert_close(best["resumed"][key], value, rtol=0, atol=0)


def test_a_bad_setting_is_refused_with_the_key_named_and_nothing_written(tmp_path, data_root):
    with pytest.raises(SettingsError, match=r"model\.backbone\.pooling='middle'; choose from"):
        run(smoke(tmp_path, data_root, "model.backbone.pooling=middle"))
    assert list(tmp_path.iterdir()) == []


def test_a_failure_during_training_is_recorded_and_counted(tmp_path, data_root, monkeypatch):
    def broken_step(*args, **kwargs):
        raise RuntimeError("a kernel broke")

    monkeypatch.setattr(engine, "train_step", broken_step)
    record = run(smoke(tmp_path, data_root))
    assert record.status == "failed" and "RuntimeError: a kernel broke" in record.error
    (path,) = list(tmp_path.rglob("record.json"))
    assert json.loads(path.read_text())["status"] == "failed"
    assert "failed" in (tmp_path / "leaderboard.md").read_text()


def test_runs_with_different_settings_never_share_a_directory(tmp_path, data_root):
    first = run(smoke(tmp_path, data_root, "trainer.lr=0.01"))
    second = run(smoke(tmp_path, data_root, "trainer.lr=0.02"))
    assert len(list(tmp_path.rglob("record.json"))) == 2
    assert first.variant != second.variant
    assert len(read_leaderboard(tmp_path / "leaderboard.csv")) == 2
