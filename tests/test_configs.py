"""Every config composes, and every model trains a smoke step (a new config is picked up
automatically)."""

import math

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lra_bench.engine import TrainerConfig, train_and_evaluate
from lra_bench.run import build_model
from tests.conftest import compose_config, names_in
from tests.official_files import WRITERS

MODELS = names_in("model")
TASKS = names_in("task")
PROFILES = names_in("profile")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", MODELS)
def test_every_combination_composes(model, task, profile):
    cfg = compose_config([f"model={model}", f"task={task}", f"profile={profile}"])
    assert cfg.model.name == model and cfg.task.name == task and cfg.profile.name == profile
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.model.backbone._target_ and cfg.task.data._target_


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    cache = {}

    def load(task):
        if task not in cache:
            if task in WRITERS:  # generated tasks make their own data
                WRITERS[task](root)
            cfg = compose_config([f"task={task}", "profile=smoke"])
            cache[task] = instantiate(cfg.task.data).load(root, progress=False)
        return cache[task]

    return load


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_a_smoke_step(model, task, smoke_data, tmp_path):
    cfg = compose_config([f"model={model}", f"task={task}", "profile=smoke"])
    data = smoke_data(task)
    network = build_model(cfg, data)
    trainer = TrainerConfig(
        **{**OmegaConf.to_container(cfg.trainer), "max_steps": 2, "eval_every": 2}
    )
    result = train_and_evaluate(
        network,
        data,
        trainer,
        tmp_path,
        device=__import__("torch").device("cpu"),
        seed=0,
        progress=False,
    )
    assert result.status == "ok" and result.steps == 2
    assert math.isfinite(result.final_train_loss)
    assert 0.0 <= result.test_accuracy <= 1.0


LRA_ATTENTION = {  # LRA_SPEC.md section 5.2: heads, qkv_dim, attention dropout of each task
    "listops": (8, 512, 0.1),
    "text": (4, 256, 0.1),
    "retrieval": (4, 128, 0.1),
    "image": (8, 64, 0.2),
    "pathfinder": (4, 16, 0.1),
    "pathx": (2, 16, 0.1),
}


@pytest.mark.parametrize("task", TASKS)
def test_lra_profile_gives_every_attention_model_the_tasks_attention_shape(task):
    heads, qkv, dropout = LRA_ATTENTION[task]
    for model in ("transformer", "bigbird", "performer", "luna"):
        mixer = compose_config(
            [f"model={model}", f"task={task}", "profile=lra"]
        ).model.backbone.mixer
        assert (mixer.n_heads, mixer.qkv_dim) == (heads, qkv)
        assert mixer.get("dropout", dropout) == dropout
        mini = compose_config(
            [f"model={model}", f"task={task}", "profile=mini"]
        ).model.backbone.mixer
        assert (mini.n_heads, mini.qkv_dim) == (4, None)  # the model's own defaults
    # Heads of a state-space model are not LRA's attention heads.
    retnet = compose_config(["model=retnet", f"task={task}", "profile=lra"]).model.backbone.mixer
    assert retnet.n_heads == 4
