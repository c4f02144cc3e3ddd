"""The LRA settings of the models with an architecture of their own (conf/experiment/<task>/
<model>/lra.yaml, each taking its sizes and budget from conf/published/<source>/<task>.yaml):
S4, S4D, S5, Mega and the LRU carry their papers' values, the models that no paper ran on the LRA
carry their source's (tables below, written from LRA_SPEC.md sections 5.3-5.7), and the other
profiles are left alone. tests/test_lra_composition.py checks every model's architecture and
builds every backbone."""

from __future__ import annotations

import functools
import math

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_config, composed_zoo

TASKS = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
MODELS = ["s4", "s4d", "s5", "mega", "lru"]
PAIRS = [(task, model) for task in TASKS for model in MODELS]
# No paper ran these on the LRA: each takes its sizes and budget from a published source.
SOURCE = {
    "dss": "s4",
    "h3": "s4",
    "hyena": "s4",
    "mamba": "s4",
    "mamba2": "s5",
    "gla": "mega",
    "retnet": "mega",
    "rwkv6": "mega",
}
BORROWED = [(task, model) for task in TASKS for model in SOURCE]
TRAIN_EXAMPLES = {
    "listops": 96000,
    "text": 25000,
    "retrieval": 147086,
    "image": 45000,
    "pathfinder": 160000,
    "pathx": 160000,
}

# LRA_SPEC 5.3 (state-spaces/s4 configs/experiment/lra/s4-*.yaml); S4D runs the same configs.
# task: (d_model, d_state, dt_min, batch, lr, epochs, warmup, dropout); 6 layers, wd 0.05.
S4_SPEC = {
    "listops": (256, 4, 1e-3, 32, 0.01, 40, 12000, 0.0),
    "text": (256, 4, 1e-3, 16, 0.01, 32, 5000, 0.0),
    "retrieval": (256, 4, 1e-3, 64, 0.01, 20, 5000, 0.0),
    "image": (512, 64, 1e-3, 50, 0.01, 200, 18000, 0.1),
    "pathfinder": (256, 64, 1e-3, 64, 0.004, 200, 50000, 0.0),
    "pathx": (256, 64, 1e-4, 16, 0.001, 50, 50000, 0.0),
}
# LRA_SPEC 5.4 (lindermanlab/S5 run_lra_*.sh).
# task: (H, P, blocks, layers, batch, epochs, ssm_lr, lr_factor, wd, dropout, activation, dt_min)
S5_SPEC = {
    "listops": (128, 16, 8, 8, 50, 40, 1e-3, 3, 0.04, 0.0, "half_glu2", 1e-3),
    "text": (256, 192, 12, 6, 50, 35, 1e-3, 4, 0.07, 0.1, "half_glu2", 1e-3),
    "retrieval": (128, 256, 16, 6, 32, 20, 1e-3, 2, 0.05, 0.0, "half_glu1", 1e-3),
    "image": (512, 384, 3, 6, 50, 250, 1e-3, 4.5, 0.07, 0.1, "half_glu1", 1e-3),
    "pathfinder": (192, 256, 8, 6, 64, 200, 9e-4, 5, 0.03, 0.05, "half_glu1", 1e-3),
    "pathx": (128, 256, 16, 6, 32, 75, 6e-4, 3, 0.06, 0.0, "half_glu1", 1e-4),
}
# LRA_SPEC 5.5 (Mega Table 8 + README max-updates / warmup).
# task: (depth, d_model, d_ffn, z, v, attention, batch, lr, dropout, wd, updates, warmup, chunk)
MEGA_SPEC = {
    "listops": (6, 80, 160, 64, 160, "softmax", 64, 0.001, 0.1, 0.01, 90000, 3000, None),
    "text": (4, 128, 256, 64, 256, "softmax", 50, 0.004, 0.1, 0.01, 25000, 10000, None),
    "retrieval": (6, 128, 256, 64, 256, "softmax", 64, 0.003, 0.1, 0.04, 91960, 10000, None),
    "image": (8, 160, 320, 96, 320, "laplace", 50, 0.01, 0.0, 0.02, 180000, 9000, None),
    "pathfinder": (6, 128, 256, 64, 256, "laplace", 128, 0.01, 0.0, 0.01, 250000, 50000, None),
    "pathx": (4, 64, 128, 32, 128, "laplace", 128, 0.01, 0.0, 0.01, 125000, 25000, 4096),
}
# LRA_SPEC 5.7 (LRU paper appendix Tables 8, 9; base lr from a third-party re-implementation).
# task: (H, N, iterations, batch, LR factor, dropout, r_min, r_max, max phase, bidirectional,
# base lr); 6 layers, weight decay 0.05, warm-up over 10% of the iterations.
LRU_SPEC = {
    "listops": (128, 256, 80000, 32, 0.5, 0.0, 0.0, 0.99, 2 * math.pi, False, 0.003),
    "text": (256, 192, 50000, 32, 0.1, 0.1, 0.5, 0.9, 2 * math.pi, False, 0.004),
    "retrieval": (128, 256, 100000, 64, 0.5, 0.1, 0.5, 0.9, 2 * math.pi, False, 0.002),
    "image": (512, 384, 180000, 50, 0.25, 0.1, 0.9, 0.999, 2 * math.pi, False, 0.005),
    "pathfinder": (192, 256, 500000, 64, 0.25, 0.0, 0.9, 0.999, 2 * math.pi, True, 0.004),
    "pathx": (128, 256, 250000, 32, 0.25, 0.0, 0.999, 0.9999, math.pi / 10, True, 0.002),
}


@functools.cache
def composed(task: str, model: str, profile: str):
    if profile == "lra":
        return composed_zoo("lra")[task, model]
    return compose_config([f"task={task}", f"model={model}", f"profile={profile}"])


def expected(task: str, model: str) -> dict:
    """Dotted config key -> published value."""
    if model in ("s4", "s4d"):
        d, n, dt_min, batch, lr, epochs, warmup, dropout = S4_SPEC[task]
        return {
            "model.backbone.d_model": d,
            "model.backbone.n_layers": 6,
            "model.backbone.d_ff": 0,
            "model.backbone.dropout": dropout,
            "model.backbone.mixer.d_state": n,
            "model.backbone.mixer.dt_min": dt_min,
            "model.backbone.mixer.dt_max": 0.1,
            "model.backbone.mixer.ssm_lr": 0.001,
            "model.backbone.mixer.dropout": dropout,
            **({"model.backbone.mixer.init": "legs"} if model == "s4d" else {}),
            "trainer.batch_size": batch,
            "trainer.max_steps": TRAIN_EXAMPLES[task] // batch * epochs,
            "trainer.warmup_steps": warmup,
            "trainer.lr": lr,
            "trainer.weight_decay": 0.05,
            "trainer.betas": [0.9, 0.999],
            "trainer.grad_clip": None,
        }
    if model == "s5":
        h, p, blocks, layers, batch, epochs, ssm_lr, factor, wd, drop, act, dt_min = S5_SPEC[task]
        per_epoch = TRAIN_EXAMPLES[task] // batch
        return {
            "model.backbone.d_model": h,
            "model.backbone.n_layers": layers,
            "model.backbone.d_ff": 0,
            "model.backbone.dropout": 0.0,
            "model.backbone.mixer.d_state": p,
            "model.backbone.mixer.blocks": blocks,
            "model.backbone.mixer.activation": act,
            "model.backbone.mixer.dt_min": dt_min,
            "model.backbone.mixer.clip_eigs": task == "image",
            "model.backbone.mixer.ssm_lr": ssm_lr,
            "model.backbone.mixer.dropout": drop,
            "trainer.batch_size": batch,
            "trainer.max_steps": per_epoch * epochs,
            "trainer.warmup_steps": 0 if task == "text" else per_epoch,
            "trainer.lr": ssm_lr * factor,
            "trainer.weight_decay": wd,
            "trainer.betas": [0.9, 0.999],
            "trainer.grad_clip": None,
        }
    if model == "lru":
        h, n, steps, batch, factor, drop, r_min, r_max, phase, bidirectional, lr = LRU_SPEC[task]
        return {
            "model.backbone.d_model": h,
            "model.backbone.n_layers": 6,
            "model.backbone.d_ff": 0,
            "model.backbone.dropout": 0.0,
            "model.backbone.mixer.d_state": n,
            "model.backbone.mixer.r_min": r_min,
            "model.backbone.mixer.r_max": r_max,
            "model.backbone.mixer.max_phase": phase,
            "model.backbone.mixer.ssm_lr": lr * factor,
            "model.backbone.mixer.dropout": drop,
            "model.backbone.mixer.causal": not bidirectional,
            "trainer.batch_size": batch,
            "trainer.max_steps": steps,
            "trainer.warmup_steps": steps // 10,
            "trainer.lr": lr,
            "trainer.weight_decay": 0.05,
            "trainer.betas": [0.9, 0.999],
            "trainer.grad_clip": None,
        }
    if model == "mega":
        depth, d, ffn, z, v, attn, batch, lr, drop, wd, updates, warmup, chunk = MEGA_SPEC[task]
        return {
            "model.backbone.d_model": d,
            "model.backbone.n_layers": depth,
            "model.backbone.d_ff": ffn,
            "model.backbone.dropout": drop,
            "model.backbone.mixer.z_dim": z,
            "model.backbone.mixer.v_dim": v,
            "model.backbone.mixer.ema_dim": 16,
            "model.backbone.mixer.attention": attn,
            "model.backbone.mixer.chunk_size": chunk,
            "model.backbone.mixer.dropout": 0.0,
            "trainer.batch_size": batch,
            "trainer.max_steps": updates,
            "trainer.warmup_steps": warmup,
            "trainer.lr": lr,
            "trainer.weight_decay": wd,
            "trainer.betas": [0.9, 0.98],
            "trainer.eps": 1e-8,
            "trainer.grad_clip": 1.0,
        }


def assert_values(cfg, values: dict) -> None:
    for key, value in values.items():
        got = OmegaConf.select(cfg, key, throw_on_missing=True)
        if isinstance(got, float) or isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-9), key
        elif key == "trainer.betas":
            assert list(got) == value, key
        else:
            assert got == value, key


def assert_budget_runs_whole_evaluations(cfg, source: str) -> None:
    assert cfg.trainer.schedule == ("linear" if source == "mega" else "cosine")
    assert cfg.trainer.eval_every > 0 and cfg.trainer.max_steps % cfg.trainer.eval_every == 0


@pytest.mark.parametrize(("task", "model"), PAIRS)
def test_experiment_carries_the_published_values(task, model):
    cfg = composed(task, model, "lra")
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    backbone = cfg.model.backbone
    assert backbone.positions == "none" and backbone.pooling == "mean"
    assert_budget_runs_whole_evaluations(cfg, model)
    assert_values(cfg, expected(task, model))


def source_values(task: str, model: str) -> dict:
    """The source's sizes and budget a borrowing model must carry, and the layer values its
    file takes from the source."""
    source = SOURCE[model]
    values = {
        key: value
        for key, value in expected(task, source).items()
        if key.startswith("trainer.")
        or key in ("model.backbone.d_model", "model.backbone.n_layers", "model.backbone.d_ff")
    }
    if source == "s4":
        dropout, dt_min = S4_SPEC[task][7], S4_SPEC[task][2]
        values["model.backbone.dropout"] = dropout
        if model in ("dss", "h3", "mamba"):
            values["model.backbone.mixer.dt_min"] = dt_min
        if model == "dss":  # S4's N real states as DSS's complex modes
            values["model.backbone.mixer.d_state"] = S4_SPEC[task][1] // 2
            values["model.backbone.mixer.dropout"] = dropout
    elif source == "s5":  # Mamba-2: S5's p_dropout on the blocks, S5's SSM rate and dt_min
        values["model.backbone.dropout"] = S5_SPEC[task][9]
        values["model.backbone.mixer.ssm_lr"] = S5_SPEC[task][6]
        values["model.backbone.mixer.dt_min"] = S5_SPEC[task][11]
    else:
        values["model.backbone.dropout"] = MEGA_SPEC[task][8]
    return values


@pytest.mark.parametrize(("task", "model"), BORROWED)
def test_borrowed_settings_are_the_sources(task, model):
    cfg = composed(task, model, "lra")
    text = (CONF_DIR / "experiment" / task / model / "lra.yaml").read_text()
    assert f"conf/published/{SOURCE[model]}/{task}.yaml" in text
    assert "No paper ran" in text or model == "dss"  # DSS's own paper's settings: not in LRA_SPEC
    assert_budget_runs_whole_evaluations(cfg, SOURCE[model])
    assert_values(cfg, source_values(task, model))


@pytest.mark.parametrize(("task", "model"), PAIRS + BORROWED)
def test_other_profiles_are_unaffected(task, model):
    """profile=mini composes exactly as the model config plus the mini profile's shared trainer
    settings and the task's mini sizes."""
    assert not (CONF_DIR / "experiment" / task / model / "mini.yaml").exists()
    cfg = composed(task, model, "mini")
    model_file = OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml")
    sizes = OmegaConf.load(CONF_DIR / "task_profile" / task / "mini.yaml")
    shared = OmegaConf.load(CONF_DIR / "config.yaml")
    profile = OmegaConf.load(CONF_DIR / "profile" / "mini.yaml")
    want_backbone = OmegaConf.merge(model_file.backbone, sizes.model.backbone)
    want_trainer = OmegaConf.merge(shared.trainer, profile.trainer, sizes.trainer)
    assert OmegaConf.to_container(cfg.model.backbone) == OmegaConf.to_container(want_backbone)
    assert OmegaConf.to_container(cfg.trainer) == OmegaConf.to_container(want_trainer)
