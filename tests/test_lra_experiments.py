"""The published LRA settings of S4, S4D, S5 and Mega (conf/experiment/<task>/<model>/
lra.yaml): every file composes with profile=lra, carries the values of its source (tables below,
written from LRA_SPEC.md sections 5.3-5.5), instantiates, and leaves the other profiles alone."""

from __future__ import annotations

import functools

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_config

TASKS = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
MODELS = ["s4", "s4d", "s5", "mega"]
PAIRS = [(task, model) for task in TASKS for model in MODELS]
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


@functools.cache
def composed(task: str, model: str, profile: str):
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


@pytest.mark.parametrize(("task", "model"), PAIRS)
def test_experiment_carries_the_published_values(task, model):
    path = CONF_DIR / "experiment" / task / model / "lra.yaml"
    assert path.read_text().startswith("# @package _global_\n")
    cfg = composed(task, model, "lra")
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    backbone = cfg.model.backbone
    assert backbone.positions == "none" and backbone.pooling == "mean"
    assert cfg.trainer.schedule == ("linear" if model == "mega" else "cosine")
    assert cfg.trainer.eval_every > 0 and cfg.trainer.max_steps % cfg.trainer.eval_every == 0
    for key, value in expected(task, model).items():
        got = OmegaConf.select(cfg, key, throw_on_missing=True)
        if isinstance(got, float) or isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-9), key
        elif key == "trainer.betas":
            assert list(got) == value, key
        else:
            assert got == value, key


@pytest.mark.parametrize(("task", "model"), PAIRS)
def test_experiment_model_instantiates(task, model):
    cfg = composed(task, model, "lra")
    network = instantiate(cfg.model.backbone, vocab_size=10, num_classes=10, max_length=64)
    tokens = torch.randint(1, 10, (2, 16))
    with torch.no_grad():
        logits = network.eval()(tokens, torch.tensor([16, 9]))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize(("task", "model"), PAIRS)
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
