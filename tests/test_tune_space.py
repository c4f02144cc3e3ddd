"""The tuning sweeper's search spaces (conf/hydra/sweeper/tune.yaml, read by
hydra_plugins/lra_bench_tune): per model over the default, warm-up as shares of max_steps."""

import pytest
import yaml

from hydra_plugins.lra_bench_tune.tune_sweeper import (
    model_search_space,
    refuse_fixed_sweeps,
    warmup_choice,
)
from tests.conftest import CONF_DIR


@pytest.fixture(scope="module")
def spaces():
    return yaml.safe_load((CONF_DIR / "hydra" / "sweeper" / "tune.yaml").read_text())[
        "search_spaces"
    ]


def test_a_model_without_its_own_space_gets_the_default(spaces):
    assert model_search_space(spaces, "transformer", max_steps=5000) == {
        "trainer.lr": "tag(log, interval(1e-4, 3e-3))",
        "trainer.weight_decay": "interval(0.0, 0.1)",
        "model.backbone.dropout": "interval(0.0, 0.3)",
        "trainer.warmup_steps": "choice(0, 100, 500, 1000)",
    }


def test_a_state_space_model_has_its_own(spaces):
    space = model_search_space(spaces, "s4d", max_steps=1000)
    assert space["trainer.lr"] == "tag(log, interval(5e-4, 1e-2))"
    assert space["model.backbone.dropout"] == "interval(0.0, 0.2)"
    assert space["trainer.warmup_steps"] == "choice(0, 10, 50, 100)"
    # Mega overrides two entries and keeps the default's others.
    mega = model_search_space(spaces, "mega", max_steps=1000)
    assert mega["trainer.weight_decay"] == "interval(0.0, 0.1)"
    assert mega["trainer.warmup_steps"] == "choice(0, 50, 100, 200)"


def test_warmup_shares_of_a_short_run_collapse():
    assert warmup_choice([0.0, 0.02, 0.1, 0.2], max_steps=4) == "choice(0, 1)"
    assert warmup_choice([0.0, 0.02], max_steps=4) is None  # one value: not searched


@pytest.mark.parametrize("swept", ["model=transformer,s4d", "seed=0,1", "task=listops,text"])
def test_a_study_never_sweeps_what_identifies_the_experiment(swept):
    with pytest.raises(ValueError, match="cannot be swept"):
        refuse_fixed_sweeps([swept, "profile=smoke"])
    refuse_fixed_sweeps(["model=s4d", "trainer.batch_size=choice(16,32)"])
