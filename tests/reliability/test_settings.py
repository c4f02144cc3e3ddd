"""Cases 4, 5, 6: a setting the run cannot use is refused before anything is read or written,
in one line naming the key, the value and what is allowed (exit status 2, no record, no run
folder); a run that did not end ok exits non-zero."""

from __future__ import annotations

import pytest

import lra_bench.engine as engine
from lra_bench.run import run
from lra_bench.settings_check import SettingsError
from tests.reliability.conftest import run_main, smoke, smoke_overrides

REFUSED = [
    # (override, what the one line says)
    ("trainer.max_steps=0", "trainer.max_steps=0: expected an integer >= 1"),
    ("trainer.max_steps=-1", "trainer.max_steps=-1: expected an integer >= 1"),
    ("trainer.lr=-1", "trainer.lr=-1: expected a number > 0"),
    ("trainer.lr=abc", "trainer.lr='abc': expected a number > 0"),
    ("trainer.batch_size=0", "trainer.batch_size=0: expected an integer >= 1"),
    ("trainer.eval_every=0", "trainer.eval_every=0: expected an integer >= 1"),
    ("trainer.grad_accum=3", "trainer.batch_size=32 is not divisible by trainer.grad_accum=3"),
    ("trainer.betas=[0.9,1.5]", "trainer.betas=[0.9, 1.5]: expected a list of 2 numbers, each in"),
    ("trainer.schedule=warm", "trainer.schedule='warm': expected one of constant, cosine,"),
    ("trainer.precision=fp8", "trainer.precision='fp8': expected one of auto, fp32, bf16"),
    ("trainer.grad_clip=0", "trainer.grad_clip=0: expected a number > 0 or null"),
    ("seed=abc", "seed='abc': expected an integer in [0, 4294967296)"),
    ("seed=-1", "seed=-1: expected an integer in [0, 4294967296)"),
    ("checkpoint_every=-5", "checkpoint_every=-5: expected an integer >= 0"),
    ("progress=maybe", "progress='maybe': expected true or false"),
    ("device=cuda:7", "device='cuda:7'"),
    ("device=tpu9", "device='tpu9': expected auto, cpu, cuda or cuda:N"),
    ("kernels.fallback=ignore", "kernels.fallback='ignore'; choose from ('error', 'warn')"),
    ("kernels.backend=nosuch", "kernels.backend='nosuch'; choose from"),
    ("+wandb=true", "unknown setting(s) wandb: no file of conf/ defines them"),
    ("+trainer.lr_decay=0.5", "unknown setting(s) trainer.lr_decay: trainer takes batch_size,"),
    ("+model.width=8", "unknown setting(s) model.width: model takes backbone, name"),
    (
        "+model.backbone.depth=3",
        "unknown setting(s) model.backbone.depth: SequenceClassifier takes",
    ),
    ("+model.backbone.mixer.d_state=4", "model.backbone.mixer.d_state: SoftmaxAttention takes"),
    ("+task.data.size=9", "unknown setting(s) task.data.size: ListOps takes max_length,"),
    ("model.backbone.d_model=abc", "model.backbone.d_model='abc': expected an integer"),
    ("task.data.max_length=1.5", "task.data.max_length=1.5: expected an integer"),
    ("model.backbone.pooling=middle", "model.backbone.pooling='middle'; choose from"),
    ("experiment=listops/s4/lra", "experiment=listops/s4/lra: settings for another run than"),
    ("task_profile=text/smoke", "task_profile=text/smoke: sizes of another task or profile"),
]


@pytest.mark.parametrize("override, message", REFUSED, ids=[o for o, _ in REFUSED])
def test_a_bad_setting_is_refused_before_anything_is_written(
    tmp_path, data_root, override, message
):
    cfg, choices = smoke(tmp_path / "results", data_root, override)
    with pytest.raises(SettingsError) as refused:
        run(cfg, choices)
    text = str(refused.value)
    assert message in text
    assert "\n" not in text
    assert not (tmp_path / "results").exists()  # no record, no run folder, no leaderboard


def test_the_app_prints_one_line_and_exits_2_leaving_nothing(
    tmp_path, data_root, monkeypatch, capsys
):
    results = tmp_path / "results"
    for override in ("seed=abc", "trainer.lr=abc", "+wandb=true"):
        code, out, err = run_main(
            monkeypatch, capsys, smoke_overrides(results, data_root, override)
        )
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("lra_bench.run: error: ")
        assert override.lstrip("+").split("=")[0] in err
    assert not results.exists()  # in particular no stray seedabc-... folder


def test_an_experiment_of_the_run_s_own_model_is_accepted(tmp_path, data_root):
    from lra_bench.settings_check import settings_problems

    cfg, choices = smoke(tmp_path, data_root, "model=s4", "experiment=listops/s4/smoke")
    assert choices["experiment"] == "listops/s4/smoke"
    assert settings_problems(cfg, choices) == []


def test_every_problem_is_named_at_once(tmp_path, data_root):
    cfg, choices = smoke(tmp_path, data_root, "trainer.lr=abc", "seed=abc", "+wandb=1")
    with pytest.raises(SettingsError) as refused:
        run(cfg, choices)
    assert "trainer.lr='abc'" in str(refused.value) and "seed='abc'" in str(refused.value)
    assert "wandb" in str(refused.value)


def test_a_diverged_run_is_recorded_and_exits_1(tmp_path, data_root, monkeypatch, capsys):
    def nan_step(*args, **kwargs):
        return float("nan")  # what train_step returns when the loss is not finite

    monkeypatch.setattr(engine, "train_step", nan_step)
    results = tmp_path / "results"
    code, out, err = run_main(monkeypatch, capsys, smoke_overrides(results, data_root))
    assert code == 1
    assert "run diverged: training loss became non-finite" in err
    (record,) = results.glob("runs/*/*/*/*/record.json")
    assert '"status": "diverged"' in record.read_text()
