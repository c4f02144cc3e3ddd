import math

import pytest
import torch
from torch import nn

from lra_bench.optim import SCHEDULES, build_optimizer, build_scheduler, parameter_groups
from models.parameter_tags import tag


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.table = tag(nn.Parameter(torch.zeros(3, 4)), weight_decay=0.0)
        self.ssm = tag(nn.Parameter(torch.zeros(2, 2)), lr=1e-3, weight_decay=0.0)


def test_groups_follow_parameter_metadata():
    groups = {
        (g["lr"], g["weight_decay"]): sorted(g["names"])
        for g in parameter_groups(Tiny(), 0.05, 0.1)
    }
    assert groups == {
        (0.05, 0.1): ["linear.weight"],
        (0.05, 0.0): ["linear.bias", "norm.bias", "norm.weight", "table"],
        (1e-3, 0.0): ["ssm"],
    }


def test_rsqrt_is_lras_schedule():
    # base * min(1, s/w) / sqrt(max(s, w)): peak base / sqrt(w) at the end of warmup
    f = SCHEDULES["rsqrt"]
    assert f(999, 1000, 5000) == pytest.approx(1 / math.sqrt(1000))
    assert f(499, 1000, 5000) == pytest.approx(0.5 / math.sqrt(1000))
    assert f(3999, 1000, 5000) == pytest.approx(1 / math.sqrt(4000))


def test_cosine_warms_up_then_decays_to_zero():
    f = SCHEDULES["cosine"]
    assert f(0, 10, 110) == pytest.approx(0.1)
    assert f(9, 10, 110) == pytest.approx(1.0)
    assert f(60, 10, 110) == pytest.approx(0.5)
    assert f(110, 10, 110) == pytest.approx(0.0)


def test_scheduler_scales_every_group_including_own_learning_rates():
    model = Tiny()
    optimizer = build_optimizer(model, lr=0.05, weight_decay=0.1)
    scheduler = build_scheduler(optimizer, "rsqrt", warmup=4, total=10)
    rates = {round(g["lr"], 12) for g in optimizer.param_groups}
    assert rates == {round(0.05 * 0.25 / 2, 12), round(1e-3 * 0.25 / 2, 12)}
    optimizer.step()
    scheduler.step()
    assert {round(g["lr"], 12) for g in optimizer.param_groups} == {
        round(0.05 * 0.5 / 2, 12),
        round(1e-3 * 0.5 / 2, 12),
    }


def test_unknown_schedule_names_the_key():
    with pytest.raises(ValueError, match="trainer.schedule='step'"):
        build_scheduler(build_optimizer(Tiny(), 1e-3, 0.0), "step", 0, 10)


def test_linear_schedule_warms_up_then_decays_to_zero():
    f = SCHEDULES["linear"]
    assert [f(s, 4, 12) for s in (0, 3)] == [0.25, 1.0]
    assert f(8, 4, 12) == pytest.approx(0.5) and f(12, 4, 12) == 0.0 and f(20, 4, 12) == 0.0
