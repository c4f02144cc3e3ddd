"""The mini steps/s benchmark's summary (benchmarks/mini_steps.py): one row per model from its
interleaved rounds, the median, and the ratio of medians to the Transformer's."""

from benchmarks import mini_steps


def _round(model, steps_per_second, wall):
    return {"model": model, "status": "ok", "steps_per_second": steps_per_second, "wall_s": wall}


def test_medians_and_the_ratio_of_medians():
    rows = mini_steps.summarize(
        {
            "transformer": [
                _round("transformer", 8.0, 12.0),
                _round("transformer", 7.0, 14.0),
                _round("transformer", 9.0, 10.0),
            ],
            "mamba": [
                _round("mamba", 4.0, 20.0),
                _round("mamba", 5.0, 17.0),
                _round("mamba", 3.5, 22.0),
            ],
        }
    )
    by_model = {row["model"]: row for row in rows}
    assert by_model["transformer"]["steps_per_second"] == 8.0
    assert by_model["mamba"]["steps_per_second"] == 4.0
    assert by_model["mamba"]["vs_transformer"] == 0.5
    assert by_model["mamba"]["wall_s"] == 20.0
    assert by_model["mamba"]["rounds"] == "4.0 5.0 3.5"


def test_a_failed_round_is_counted_and_a_model_that_never_ran_keeps_its_failure():
    failed = {"model": "bigbird", "status": "failed", "error": "boom", "wall_s": 1.0}
    rows = mini_steps.summarize(
        {
            "transformer": [_round("transformer", 8.0, 12.0)],
            "mamba": [_round("mamba", 4.0, 20.0), {**failed, "model": "mamba"}],
            "bigbird": [failed],
        }
    )
    by_model = {row["model"]: row for row in rows}
    assert by_model["mamba"]["error"] == "1 of 2 rounds failed"
    assert by_model["mamba"]["steps_per_second"] == 4.0
    assert by_model["bigbird"]["status"] == "failed"
    assert "vs_transformer" not in by_model["bigbird"]
