import multiprocessing

import pytest

from lra_bench.identity import RunLock, RunLockedError, config_hash, run_dir_for
from tests.conftest import compose_config


def test_run_dir_names_what_identifies_the_run():
    cfg = compose_config(["profile=smoke", "seed=3", "results_dir=/tmp/r"])
    path = run_dir_for(cfg)
    assert path.parent == __import__("pathlib").Path("/tmp/r/runs/listops/transformer/smoke")
    assert path.name == f"seed3-{config_hash(cfg)}"


def test_hash_ignores_where_and_how_verbosely_but_not_what():
    base = config_hash(compose_config(["profile=smoke"]))
    assert base == config_hash(
        compose_config(["profile=smoke", "results_dir=elsewhere", "progress=false", "data_root=/x"])
    )
    assert base != config_hash(compose_config(["profile=smoke", "trainer.lr=0.5"]))
    assert base != config_hash(compose_config(["profile=smoke", "seed=1"]))
    assert base != config_hash(compose_config(["profile=mini"]))


def _try_lock(path, queue):
    try:
        with RunLock(path):
            queue.put("acquired")
    except RunLockedError as error:
        queue.put(str(error))


def test_lock_keeps_a_second_process_out(tmp_path):
    queue = multiprocessing.get_context("spawn").Queue()
    with RunLock(tmp_path):
        process = multiprocessing.get_context("spawn").Process(
            target=_try_lock, args=(tmp_path, queue)
        )
        process.start()
        process.join(60)
        message = queue.get(timeout=5)
    assert "being run by another process" in message
    with RunLock(tmp_path):  # released on exit, so it can be taken again
        pass


def test_lock_is_not_reentrant_within_a_process(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError):
            with RunLock(tmp_path):
                pass


def test_variant_is_the_hash_without_the_seed():
    a = compose_config(["profile=smoke", "seed=0"])
    b = compose_config(["profile=smoke", "seed=1"])
    assert config_hash(a) != config_hash(b)
    assert config_hash(a, include_seed=False) == config_hash(b, include_seed=False)


def test_moving_code_keeps_the_identity_but_a_setting_changes_it():
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    cfg = compose_config(["model=mamba", "profile=smoke"])
    moved = OmegaConf.create(OmegaConf.to_container(cfg))
    moved.model.backbone.mixer._target_ = "models.somewhere_else.Mamba"
    moved.model.backbone._target_ = "models.elsewhere.SequenceClassifier"
    assert config_hash(moved) == config_hash(cfg)
    changed = OmegaConf.create(OmegaConf.to_container(cfg))
    changed.model.backbone.mixer.d_state = 32
    assert config_hash(changed) != config_hash(cfg)


def test_a_record_config_hashes_like_the_composed_config():
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    cfg = compose_config(["model=s4d", "profile=mini"])
    assert config_hash(OmegaConf.to_container(cfg, resolve=True)) == config_hash(cfg)
