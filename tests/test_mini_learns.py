"""The promise of the mini profile: the Transformer learns ListOps well above the majority rate
on 2 CPU cores (about 4 minutes). Slow: run with `make test-slow`."""

import pytest

from lra_bench.run import run
from tests.conftest import compose_config


@pytest.mark.slow
def test_mini_listops_transformer_beats_majority_by_10_points(tmp_path):
    cfg = compose_config(
        [
            "profile=mini",
            f"results_dir={tmp_path}",
            f"data_root={tmp_path / 'data'}",
            "progress=false",
        ]
    )
    record = run(cfg)
    assert record.status == "ok"
    assert record.test_accuracy >= record.test_majority_rate + 0.10
