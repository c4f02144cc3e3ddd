"""metrics.csv and the learning curve (lra_bench/metrics_log.py, learning_curve.py)."""

import csv
from types import SimpleNamespace

import pytest
import torch

from lra_bench.metrics_log import CURVE_NAME, METRICS_NAME, MetricsLog, gradient_norm


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def feed(log, steps, evaluations):
    """Steps of loss 1/step, 0.5 s each; an evaluation of accuracy step/10 where asked."""
    for step in steps:
        log.step(step, 1.0 / step, lr=1e-3 * step, seconds=0.5, grad_norm=lambda s=step: 10.0 * s)
        if step in evaluations:
            log.evaluation(step, step / 10)


def test_rows_every_n_steps_and_at_every_evaluation(tmp_path):
    evaluations = {3, 5}
    log = MetricsLog(tmp_path, every=2, evaluation_steps=lambda s: s in evaluations)
    log.start(0)
    feed(log, range(1, 6), evaluations)
    rows = rows_of(tmp_path / METRICS_NAME)
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 5]
    # The loss is the window's mean; steps/s is over the time spent in the window's steps.
    assert float(rows[0]["loss"]) == pytest.approx((1 + 1 / 2) / 2)
    assert float(rows[0]["steps_per_second"]) == pytest.approx(2.0)
    assert rows[0]["val_accuracy"] == ""
    assert float(rows[1]["loss"]) == pytest.approx(1 / 3)  # a window of one step
    assert float(rows[1]["val_accuracy"]) == pytest.approx(0.3)
    assert float(rows[1]["lr"]) == pytest.approx(3e-3)
    assert float(rows[1]["grad_norm"]) == pytest.approx(30.0)
    assert float(rows[3]["val_accuracy"]) == pytest.approx(0.5)
    record = SimpleNamespace(task="listops", model="transformer", profile="smoke", seed=0)
    assert log.finish(record) == [tmp_path / CURVE_NAME]
    assert (tmp_path / CURVE_NAME).read_bytes()[:4] == b"\x89PNG"


def test_a_resumed_run_drops_the_rows_past_its_checkpoint(tmp_path):
    evaluations = {2, 4, 6}
    first = MetricsLog(tmp_path, every=1, evaluation_steps=lambda s: s in evaluations)
    first.start(0)
    feed(first, range(1, 4), evaluations)  # dies after step 3; its checkpoint is at step 2
    again = MetricsLog(tmp_path, every=1, evaluation_steps=lambda s: s in evaluations)
    again.start(2)
    feed(again, range(3, 7), evaluations)
    straight = tmp_path / "straight"
    straight.mkdir()
    whole = MetricsLog(straight, every=1, evaluation_steps=lambda s: s in evaluations)
    whole.start(0)
    feed(whole, range(1, 7), evaluations)
    assert rows_of(tmp_path / METRICS_NAME) == rows_of(straight / METRICS_NAME)
    assert [int(r["step"]) for r in rows_of(straight / METRICS_NAME)] == [1, 2, 3, 4, 5, 6]


def test_gradient_norm_is_the_norm_of_all_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    assert gradient_norm(model) == 0.0
    model(torch.randn(5, 3)).sum().backward()
    every = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert gradient_norm(model) == pytest.approx(float(every.norm()), rel=1e-6)


def test_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="logger.every=0"):
        MetricsLog(tmp_path, every=0, evaluation_steps=lambda s: False)
