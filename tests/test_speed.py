"""`lra-bench speed`: FLOP counting, peak memory, process isolation, out-of-memory and timeout
records, the CSV and its machine header, ratios against the Transformer, plots and summary.
Tiny settings throughout (size `tiny`, lengths 64/128, 1-2 steps)."""

from __future__ import annotations

import argparse
import os
import signal

import pandas as pd
import pytest
import torch

from lra_bench.environment import PeakMemory, cpu_name, is_out_of_memory
from lra_bench.leaderboard import read_leaderboard
from lra_bench.speed.flops import count_flops, mfu
from lra_bench.speed.report import average_accuracy, bubble_points, write_report
from lra_bench.speed.runner import (
    COLUMNS,
    CSV_NAME,
    exit_reason,
    measure,
    merge,
    read_speed_csv,
    run_speed,
)
from lra_bench.speed.settings import SpeedSettings, load_size
from lra_bench.speed.worker import model_config, training_step

TINY = load_size("tiny")  # d_model 16, 1 layer, d_ff 32, 2 heads
# conf/model/transformer.yaml at size tiny, text task (vocab 257, 2 classes):
# embedding 257*16 + [CLS] 16 + block (2 norms 64, qkv 16*48, out 16*16, FFN 16*32+32 + 32*16+16)
# + final norm 32 + head (16*32+32 + 32*2+2) = 4112 + 16 + 2160 + 32 + 610
TINY_TRANSFORMER_PARAMS = 6930


def transformer_step_flops(batch: int, length: int, d: int, d_ff: int, layers: int) -> int:
    """FLOPs of one training step of the backbone Transformer (2 classes, head width d_ff), as
    FlopCounterMode counts them: matmuls only, forward once, backward twice for every linear
    layer (input and weight gradients), 2.5 times for attention (5 products against 2)."""
    n = length + 1  # the [CLS] token
    linear = layers * 2 * batch * n * (3 * d * d + d * d + 2 * d * d_ff)
    linear += 2 * batch * (d * d_ff + d_ff * 2)
    attention = layers * 4 * batch * n * n * d
    return 3 * linear + 7 * attention // 2


def test_flops_of_a_transformer_training_step_match_the_formula():
    backbone, heads = model_config("transformer", TINY)
    assert heads == 2
    _, step = training_step(backbone, TINY, "text", 31, 2, torch.device("cpu"))
    flops, uncounted = count_flops(step)
    assert flops == transformer_step_flops(2, 31, 16, 32, 1)
    assert uncounted == []


def test_uncounted_heavy_ops_are_named():
    x = torch.randn(64, requires_grad=True)
    flops, uncounted = count_flops(lambda: torch.fft.rfft(x.cumsum(0)).abs().sum().backward())
    assert flops == 0
    assert {"aten::cumsum", "aten::_fft_r2c"} <= set(uncounted)


def test_mfu_is_achieved_over_peak():
    assert mfu(1e12, 2.0, 4e12) == (2e12, 0.5)
    assert mfu(None, 2.0, 4e12) == (None, None)
    assert mfu(1e12, 2.0, None) == (2e12, None)


def test_cpu_peak_memory_counts_an_allocation_after_reset():
    memory = PeakMemory(torch.device("cpu"))
    memory.reset()
    assert memory.method.startswith("VmHWM"), "clear_refs should work on Linux"
    block = torch.ones(50_000_000)  # 200 MB, touched
    del block
    peak = memory.peak_bytes()
    assert 190e6 <= peak < 260e6  # pages resident before the reset may be reused
    memory.reset()  # the mark goes back to the current resident set
    assert memory.peak_bytes() < 20e6


def test_out_of_memory_classification():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert exit_reason(-signal.SIGKILL, "").startswith("oom: killed by SIGKILL")
    assert exit_reason(-signal.SIGSEGV, "") == "failed: killed by signal SIGSEGV"
    assert (
        exit_reason(1, "Traceback\nValueError: bad\n") == "failed: exit status 1: ValueError: bad"
    )


def _row(model, length, sps, mem, status="ok"):
    return {
        "model": model,
        "task": "text",
        "size": "tiny",
        "batch": 2,
        "length": length,
        "device_name": "cpu0",
        "precision": "fp32",
        "status": status,
        "steps_per_sec": sps,
        "peak_mem_gb": mem,
    }


def test_ratios_against_the_transformer_of_this_or_an_earlier_run():
    earlier = pd.DataFrame(
        [_row("transformer", 64, 10.0, 1.0), _row("transformer", 128, 4.0, 4.0)],
        columns=COLUMNS,
    )
    now = [
        _row("linear", 64, 20.0, 0.5),
        _row("linear", 128, 12.0, 1.0),
        _row("transformer", 128, 5.0, 2.0),  # measured again: replaces the earlier row
        _row("linear", 256, None, None, status="oom"),
    ]
    table = merge(earlier, now).set_index(["model", "length"])
    assert len(table) == 5
    assert table.loc[("transformer", 128), "steps_per_sec"] == 5.0
    assert table.loc[("linear", 64), "speedup_vs_transformer"] == 2.0  # against the earlier run
    assert table.loc[("linear", 64), "mem_ratio_vs_transformer"] == 0.5
    assert table.loc[("linear", 128), "speedup_vs_transformer"] == 12.0 / 5.0
    assert table.loc[("linear", 128), "mem_ratio_vs_transformer"] == 0.5
    assert table.loc[("transformer", 64), "speedup_vs_transformer"] == 1.0
    assert pd.isna(table.loc[("linear", 256), "speedup_vs_transformer"])


def test_average_accuracy_leaves_out_models_lacking_a_task():
    leaderboard = pd.DataFrame(
        [
            ("listops", "transformer", "lra", "v1", 36.0, 1),
            ("text", "transformer", "lra", "v1", 64.0, 3),
            ("text", "transformer", "lra", "v2", 90.0, 1),  # fewer seeds: not the one counted
            ("listops", "linear", "lra", "v1", 20.0, 1),
            ("listops", "transformer", "mini", "v1", 99.0, 1),  # another profile
        ],
        columns=["task", "model", "profile", "variant", "test_acc_mean", "seeds"],
    )
    accuracy, tasks, lacking = average_accuracy(leaderboard, "lra")
    assert tasks == ["listops", "text"]
    assert accuracy.to_dict() == {"transformer": 50.0}
    assert lacking == {"linear": ["text"]}


@pytest.fixture(scope="module")
def speed_run(tmp_path_factory):
    """One tiny measurement run of the Transformer at 64 and 128, then its report."""
    out = tmp_path_factory.mktemp("speed")
    pd.DataFrame(
        [
            ("listops", "transformer", "lra", "v1", 40.0, 1),
            ("text", "transformer", "lra", "v1", 60.0, 1),
        ],
        columns=["task", "model", "profile", "variant", "test_acc_mean", "seeds"],
    ).to_csv(out / "leaderboard.csv", index=False)
    settings = SpeedSettings(
        models=["transformer"],
        lengths=[64, 128],
        batch=2,
        size="tiny",
        warmup=1,
        steps=2,
        threads=1,
        matmul_size=256,
    )
    table = run_speed(settings, out, log=lambda line: None)
    written = write_report(out, task="text", size="tiny", batch=2, profile="lra")
    return out, table, written


def test_each_measurement_runs_in_its_own_process(speed_run):
    out, _, _ = speed_run
    table = read_speed_csv(out / CSV_NAME)
    pids = table.worker_pid.tolist()
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_csv_schema_machine_header_and_values(speed_run):
    out, _, _ = speed_run
    lines = (out / CSV_NAME).read_text().splitlines()
    header = [line for line in lines if line.startswith("# ")]
    assert lines[: len(header)] == header, "comment lines come first"
    text = "\n".join(header)
    assert f"machine: {cpu_name()}, {os.cpu_count()} cores" in text
    assert f"torch {torch.__version__}" in text and "git " in text
    assert "size tiny (d_model 16, 1 layers, d_ff 32, 2 heads" in text
    table = pd.read_csv(out / CSV_NAME, comment="#")
    assert list(table.columns) == COLUMNS
    assert table.status.tolist() == ["ok", "ok"]
    assert table.length.tolist() == [64, 128]
    assert (table.params == TINY_TRANSFORMER_PARAMS).all()
    assert table.flops_per_step.tolist() == [
        transformer_step_flops(2, 64, 16, 32, 1),
        transformer_step_flops(2, 128, 16, 32, 1),
    ]
    assert (table.peak_mem_gb > 0).all() and (table.peak_mem_gb < 0.2).all()
    assert (table.steps_per_sec_min <= table.steps_per_sec).all()
    assert (table.steps_per_sec <= table.steps_per_sec_max).all()
    achieved = table.flops_per_step * table.steps_per_sec
    assert achieved.tolist() == pytest.approx((table.achieved_tflops * 1e12).tolist(), rel=1e-4)
    assert table.mfu.tolist() == pytest.approx(
        (achieved / (table.peak_tflops * 1e12)).tolist(), rel=1e-4
    )
    # The baseline against itself.
    assert table.speedup_vs_transformer.tolist() == [1.0, 1.0]
    assert table.mem_ratio_vs_transformer.tolist() == [1.0, 1.0]


def test_plots_and_summary_are_written(speed_run):
    out, table, written = speed_run
    names = sorted(p.name for p in written)
    assert names == sorted(
        [
            "speed_vs_length.png",
            "memory_vs_length.png",
            "accuracy_speed_memory.png",
            "speed_memory.md",
        ]
    )
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    summary = (out / "speed_memory.md").read_text()
    assert "4x4 TPU v3" in summary and "| transformer | 4K | – | – | 1.4 | 1 |" in summary
    assert "| transformer | 64 | ok |" in summary
    points, label, note = bubble_points(
        table, read_leaderboard(out / "leaderboard.csv"), "lra", 128
    )
    assert points.model.tolist() == ["transformer"] and points.accuracy.tolist() == [50.0]
    assert label == "mean test accuracy over 2 tasks (%), profile 'lra'" and note == ""


def test_out_of_memory_is_recorded_and_longer_lengths_skipped(tmp_path):
    settings = SpeedSettings(
        models=["transformer"],
        lengths=[64, 128],
        batch=2,
        size="tiny",
        warmup=1,
        steps=1,
        threads=1,
        memory_limit_gb=0.05,
        count_flops=False,
        matmul_size=0,
        worker_args=["--inject-allocation-gb=0.2"],  # 200 MB against a 50 MB cap
    )
    lines = []
    table = run_speed(settings, tmp_path, log=lines.append).set_index("length")
    assert "2 measurements (1 models x 2 lengths), each in a fresh process" in lines
    assert any(line.startswith("1 of 2, ETA ") and "L=64: oom" in line for line in lines)
    assert any(line.startswith("2 of 2 | transformer L=128: skipped") for line in lines)
    assert table.loc[64, "status"] == "oom"
    assert "can't allocate memory" in table.loc[64, "error"]
    assert table.loc[128, "status"] == "skipped"
    assert table.loc[128, "error"] == "not run: length 64 already ran out of memory"


def test_timeout_is_recorded(tmp_path):
    settings = SpeedSettings(models=["transformer"], size="tiny", timeout=0.3, threads=1)
    machine = {"device": "cpu", "device_name": "cpu0", "precision": "fp32"}
    row = measure("transformer", 64, settings, machine)
    assert row["status"] == "timeout"
    assert row["error"] == "no result within 0.3 s"
    assert row["wall_s"] < 5.0  # killed, not waited for


def test_command_line_defaults_follow_the_lra_protocol():
    from lra_bench.commands import speed

    parser = argparse.ArgumentParser()
    speed.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["speed", "--models", "transformer,linear", "--lengths", "64,128"])
    assert args.models == ["transformer", "linear"] and args.lengths == [64, 128]
    defaults = parser.parse_args(["speed"])
    assert (defaults.task, defaults.batch, defaults.size) == ("text", 32, "lra_text")
    assert defaults.lengths[:4] == [1024, 2048, 3072, 4096] and defaults.lengths[-1] == 65536
    assert load_size("lra_text") == {"d_model": 256, "n_layers": 4, "d_ff": 1024, "n_heads": 4}


def test_models_all_means_every_model_config():
    from lra_bench.speed.settings import _names
    from tests.conftest import names_in

    assert _names("all") == sorted(names_in("model"))
    assert "transformer_explicit" in _names("all")
    assert _names("s4, mamba") == ["s4", "mamba"]


def test_progress_counts_measurements_and_estimates_the_time_left():
    from lra_bench.speed.runner import Progress

    progress = Progress(4)
    assert progress.line() == "0 of 4, ETA unknown"
    progress.measured(10.0)
    assert progress.line() == "1 of 4, ETA 30 s"
    progress.measured(110.0)  # mean 60 s, two to go
    assert progress.line() == "2 of 4, ETA 2 min"
    progress.skipped()  # a skipped length costs nothing and is one fewer to come
    assert progress.line() == "3 of 4, ETA 1 min"
    progress.measured(60.0)
    assert progress.line() == "4 of 4"
