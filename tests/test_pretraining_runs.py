"""Self-pretraining as stages of a run (issue 14), at smoke size: identity, refusals, one
pretraining shared by a sweep, resume, records, the leaderboard, and every zoo model."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import lra_bench.engine as engine
import lra_bench.pretraining as pretraining
from lra_bench.identity import RunLock, config_hash, run_dir_for
from lra_bench.leaderboard import read_leaderboard
from lra_bench.records import RunRecord
from lra_bench.run import pretrain_first, run
from lra_bench.settings_check import SettingsError
from lra_bench.stages import PretrainingStage, SupervisedStage
from tasks.base import TaskData
from tests.conftest import compose_config
from tests.zoo import MODELS, accepts


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def smoke(results, data_root, *extra):
    return compose_config(
        [
            "profile=smoke",
            f"results_dir={results}",
            f"data_root={data_root}",
            "progress=false",
            *extra,
        ]
    )


# --- identity ---------------------------------------------------------------------------------------


def test_a_run_from_scratch_keeps_its_identity_whatever_the_pretraining_budget():
    base = compose_config(["profile=smoke"])
    assert "pretrain" not in __import__("lra_bench.identity").identity.identifying_config(base)
    budget = compose_config(["profile=smoke", "pretrain.trainer.max_steps=9", "pretrain.ratio=0.4"])
    assert config_hash(budget) == config_hash(base)
    assert config_hash(compose_config(["profile=smoke", "pretrain=masked"])) != config_hash(base)


def test_one_pretraining_for_every_seed_and_fine_tuning_setting():
    cfg = compose_config(["profile=smoke", "pretrain=masked"])
    same = [
        compose_config(["profile=smoke", "pretrain=masked", *extra])
        for extra in (["seed=5"], ["trainer.lr=0.1"], ["trainer.max_steps=2"])
    ]
    assert {pretraining.pretraining_hash(c) for c in same} == {pretraining.pretraining_hash(cfg)}
    assert len({config_hash(c) for c in [cfg, *same]}) == 4  # the fine-tuning runs differ
    for extra in ("pretrain.seed=1", "pretrain.ratio=0.3", "model.backbone.d_model=48"):
        other = compose_config(["profile=smoke", "pretrain=masked", extra])
        assert pretraining.pretraining_hash(other) != pretraining.pretraining_hash(cfg), extra
    causal = compose_config(["profile=smoke", "pretrain=causal"])
    assert causal.model.backbone.mixer.causal is True and causal.model.backbone.pooling == "mean"
    assert pretraining.pretraining_dir_for(causal).name.startswith("pretrain-causal-seed0-")


def test_pretrain_seed_null_follows_the_run_seed_and_seeds_stay_one_variant():
    runs = [
        compose_config(["profile=smoke", "pretrain=masked", "pretrain.seed=null", f"seed={s}"])
        for s in (0, 1)
    ]
    assert [pretraining.pretraining_seed(c) for c in runs] == [0, 1]
    assert pretraining.pretraining_hash(runs[0]) != pretraining.pretraining_hash(runs[1])
    assert config_hash(runs[0], include_seed=False) == config_hash(runs[1], include_seed=False)


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["model=fnet", "pretrain=causal"], "model fnet's mixer"),
        (["pretrain=masked", "model.backbone.mixer.causal=true"], "masked modelling needs"),
        (["pretrain=causal", "model.backbone.pooling=cls"], "sees nothing but itself"),
        (["pretrain=masked", "pretrain.ratio=1.5"], "pretrain.ratio=1.5"),
        (["pretrain=masked", "pretrain.target=mse"], "pretrain.target='mse'"),
    ],
)
def test_impossible_pretraining_is_refused_with_the_reason(overrides, says):
    problems = pretraining.problems(compose_config(["profile=smoke", *overrides]))
    assert any(says in p for p in problems), problems


def test_a_run_refuses_before_writing_anything(tmp_path, data_root):
    with pytest.raises(SettingsError) as refused:
        run(smoke(tmp_path, data_root, "model=fnet", "pretrain=causal"))
    assert "has no causal form" in str(refused.value)
    assert "unknown setting" not in str(refused.value)  # the causal key it adds is not news
    with pytest.raises(SettingsError, match="pretrain.trainer.lr=-1"):
        run(smoke(tmp_path, data_root, "pretrain=masked", "pretrain.trainer.lr=-1"))
    with pytest.raises(SettingsError, match="pretrain.rato"):
        run(smoke(tmp_path, data_root, "pretrain=masked", "+pretrain.rato=0.2"))
    assert not list(tmp_path.iterdir())


def test_every_mixer_without_a_causal_form_refuses_causal_and_no_other():
    refused = {
        m
        for m in MODELS
        if pretraining.problems(compose_config([f"model={m}", "profile=smoke", "pretrain=causal"]))
    }
    assert refused == {m for m in MODELS if not accepts(m, "causal")}
    assert {"fnet", "linformer", "luna", "nystromformer"} <= refused


# --- every model ------------------------------------------------------------------------------------------


def fake_data(task: str = "listops") -> TaskData:
    loader = instantiate(compose_config([f"task={task}", "profile=smoke"]).task.data)
    return TaskData(task, {}, loader.vocab_size, loader.num_classes, loader.max_length, "x")


@pytest.mark.parametrize("model", MODELS)
def test_every_model_pretrains_and_hands_its_weights_over(model):
    data = fake_data()
    objectives = ["masked"] + (["causal"] if accepts(model, "causal") else [])
    for objective in objectives:
        cfg = compose_config([f"model={model}", "profile=smoke", f"pretrain={objective}"])
        stage = PretrainingStage(cfg)
        wrapper = stage.build(data)
        tokens = torch.randint(1, data.vocab_size, (2, 24))
        lengths = torch.tensor([24, 13])
        masked = (torch.rand(2, 24) < 0.3) & (torch.arange(24) < lengths[:, None])
        batch = (tokens, lengths, None if objective == "causal" else masked)
        loss = stage.objective.loss(wrapper, batch, torch.device("cpu"))
        loss.backward()
        assert torch.isfinite(loss), (model, objective)
        classifier = SupervisedStage(cfg).build(data)
        weights = {k[len("backbone.") :]: v for k, v in wrapper.state_dict().items()}
        head = [k for k in classifier.state_dict() if k.startswith("head.")]
        classifier.load_state_dict(
            {k: weights.get(k, v) for k, v in classifier.state_dict().items()}
        )
        assert set(classifier.state_dict()) - set(head) <= set(weights), (model, objective)


# --- runs -------------------------------------------------------------------------------------------------


def test_two_stages_a_shared_pretraining_and_the_leaderboard(tmp_path, data_root, capsys):
    first = run(smoke(tmp_path, data_root, "pretrain=masked", "seed=0"))
    assert first.status == "ok", first.traceback
    out = capsys.readouterr().out
    assert (
        "pretraining (trained in" in out
        and "leaderboard: listops | transformer | smoke, spt-masked" in out
    )
    (pre_dir,) = tmp_path.glob("runs/listops/transformer/smoke/pretrain-masked-*")
    pre = RunRecord.read(pre_dir / "record.json")
    assert pre.stage == "pretrain" and pre.protocol == "spt-masked" and pre.test_accuracy is None
    assert pre.metric == "masked_accuracy" and 0 <= pre.best_val_metric <= 1
    assert pre.val_metrics["positions"] > 0 and pre.steps == 4
    assert [set(h) for h in pre.history] == [{"step", "train_loss", "val_masked_accuracy"}] * 2
    assert first.protocol == "spt-masked" and first.stage == "train"
    assert first.pretrained_from["config_hash"] == pre.config_hash
    assert first.pretrained_from["run_dir"] == str(pre_dir)
    stamp = (pre_dir / "record.json").stat().st_mtime_ns

    second = run(smoke(tmp_path, data_root, "pretrain=masked", "seed=1"))
    assert "found finished, reused" in capsys.readouterr().out
    assert (pre_dir / "record.json").stat().st_mtime_ns == stamp  # trained once
    assert second.pretrained_from == first.pretrained_from

    run(smoke(tmp_path, data_root))  # from scratch: its own row beside
    board = read_leaderboard(tmp_path / "leaderboard.csv")
    assert sorted(board.protocol) == ["scratch", "spt-masked"]  # no row for the pretraining
    assert board.set_index("protocol").seeds.to_dict() == {"scratch": 1, "spt-masked": 2}


def test_killed_pretraining_resumes_to_the_same_weights(tmp_path, data_root, monkeypatch):
    overrides = ["pretrain=masked", "pretrain.trainer.max_steps=6", "pretrain.trainer.eval_every=2"]
    straight, _ = pretrain_first(smoke(tmp_path / "straight", data_root, *overrides))
    real_step, calls = engine.train_step, []

    def killed_at_step_five(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # nothing catches it: no record, the checkpoint stays
        return real_step(*args, **kwargs)

    monkeypatch.setattr(engine, "train_step", killed_at_step_five)
    cfg = smoke(tmp_path / "resumed", data_root, *overrides)
    with pytest.raises(KeyboardInterrupt):
        pretrain_first(cfg)
    assert not (pretraining.pretraining_dir_for(cfg) / "record.json").exists()
    monkeypatch.setattr(engine, "train_step", real_step)
    resumed, reused = pretrain_first(cfg)
    assert not reused and resumed.record.status == "ok"
    assert resumed.record.history == straight.record.history
    best = [torch.load(p.run_dir / "best.pt")["model"] for p in (straight, resumed)]
    for name, tensor in best[0].items():
        assert torch.equal(best[1][name], tensor), name


def test_a_failed_pretraining_fails_the_run_and_is_retried(tmp_path, data_root, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a kernel broke")

    monkeypatch.setattr(engine, "train_step", broken)
    cfg = smoke(tmp_path, data_root, "pretrain=masked")
    record = run(cfg)
    assert record.status == "failed" and "pretraining run" in record.error
    assert record.pretrained_from["status"] == "failed"
    monkeypatch.undo()
    again = run(cfg)
    assert again.status == "ok" and again.pretrained_from["status"] == "ok"
    assert run_dir_for(cfg).name.startswith("seed0-")


def _hold(path, seconds, queue):
    with RunLock(path):
        queue.put("holding")
        time.sleep(seconds)


def test_a_waiting_lock_waits_for_the_holder(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    holder = context.Process(target=_hold, args=(tmp_path, 2.0, queue))
    holder.start()
    assert queue.get(timeout=120) == "holding"
    begun = time.monotonic()
    with RunLock(tmp_path, wait=True):
        waited = time.monotonic() - begun
    holder.join(60)
    assert waited > 0.5


def test_records_of_a_pretraining_are_checked():
    base = dict(task="t", model="m", profile="p", seed=0, config_hash="h", variant="v")
    good = RunRecord(**base, status="ok", stage="pretrain", protocol="spt-masked")
    good.metric, good.best_val_metric = "masked_accuracy", 0.4
    assert good.problems() == []
    with_accuracy = RunRecord(**{**good.to_dict(), "test_accuracy": 0.5})
    assert any("no accuracies" in p for p in with_accuracy.problems())
    scratch = RunRecord(**{**good.to_dict(), "protocol": "scratch"})
    assert any("SPT protocol" in p for p in scratch.problems())
    orphan = RunRecord(
        **base, status="ok", protocol="spt-causal", test_accuracy=0.5, val_accuracy=0.5
    )
    assert any("pretrained_from" in p for p in orphan.problems())
    assert OmegaConf.select(compose_config([]), "pretrain.objective") == "none"
