"""One run trained by two processes (torchrun, gloo, CPU) matches one process with the same
global batch: each rank takes half of every batch, DDP averages the gradients, rank 0 alone
writes the run's files; stopped by a signal to one rank and started again, it goes on from its
checkpoint to the same weights."""

import csv
import subprocess
import sys

import pytest
import torch

from lra_bench.records import RunRecord
from tests.apps import REPO, app_env, run_app, smoke_args

# Dropout off: the two ranks draw masks for their halves of a batch, one process for the whole,
# so with dropout the runs would differ by design. Six steps, an evaluation every two.
SETTINGS = [
    "model.backbone.dropout=0.0",
    "trainer.max_steps=6",
    "logger.every=1",
    "device=cpu",
]
# What separates the runs is the order of float32 sums only (two half-batch means averaged
# against one mean; matmuls over 16 rows against 32): ~1e-7 relative per operation. Over six
# AdamW steps that leaves weights ~1e-8 apart (measured: 1.5e-8). A split that changed the
# batch instead would move weights by about one step, lr = 1e-3, so 1e-6 separates the two.
WEIGHTS_ATOL = 1e-6
LOSS_RTOL = 1e-5


def run_dir(results):
    (path,) = [p.parent for p in results.glob("runs/*/*/*/*/config.yaml")]
    return path


def metrics_rows(folder):
    with open(folder / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def computed(rows):
    """The columns of metrics rows that do not depend on time."""
    return [{k: r[k] for k in ("step", "loss", "lr", "grad_norm", "val_accuracy")} for r in rows]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("data")
    single = tmp_path_factory.mktemp("single")
    done = run_app(*smoke_args(single, data_root, *SETTINGS))
    assert done.returncode == 0, done.stdout
    ddp = tmp_path_factory.mktemp("ddp")
    done = run_app(*smoke_args(ddp, data_root, *SETTINGS), torchrun=2)
    assert done.returncode == 0, done.stdout
    return run_dir(single), run_dir(ddp), done.stdout, data_root


def test_two_gloo_processes_train_as_one(two_runs):
    single, ddp, _, _ = two_runs
    one, two = metrics_rows(single), metrics_rows(ddp)
    assert [r["step"] for r in two] == [str(s) for s in range(1, 7)]
    for a, b in zip(one, two):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=LOSS_RTOL)
        assert float(b["grad_norm"]) == pytest.approx(float(a["grad_norm"]), rel=1e-4)
        assert a["val_accuracy"] == b["val_accuracy"]  # the same correct counts, summed
    weights = [torch.load(d / "last.pt", weights_only=True)["model"] for d in (single, ddp)]
    assert weights[0].keys() == weights[1].keys()  # no DDP "module." prefix in checkpoints
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=0, atol=WEIGHTS_ATOL)
    records = [RunRecord.read(d / "record.json") for d in (single, ddp)]
    assert records[1].status == "ok"
    assert records[1].config_hash == records[0].config_hash  # the same run, wherever it ran
    assert records[1].val_accuracy == records[0].val_accuracy
    assert records[1].test_accuracy == records[0].test_accuracy


def test_rank_zero_alone_writes_and_reports(two_runs):
    _, ddp, output, _ = two_runs
    assert output.count("this run: test accuracy") == 1
    assert output.count("record: ") == 1
    assert sorted(p.name for p in ddp.iterdir() if not p.name.startswith(".")) == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "learning_curve.png",
        "metrics.csv",
        "previous.pt",
        "record.json",
        "run.lock",
        "run.owner",
    ]


def test_a_run_stopped_on_one_rank_resumes_to_the_same_weights(two_runs, tmp_path):
    _, ddp, _, data_root = two_runs
    overrides = smoke_args(tmp_path, data_root, *SETTINGS)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    stopped = subprocess.run(
        [*launcher, str(REPO / "tests" / "stop_after_step.py"), *overrides],
        cwd=REPO,
        env=app_env(STOP_RANK="1", STOP_AFTER_STEP="3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert stopped.returncode != 0, stopped.stdout
    # Rank 1 got the signal; both ranks stopped after the same step, rank 0 checkpointed.
    assert stopped.stdout.count("stopped by SIGTERM at step 3; a checkpoint was written") == 2
    folder = run_dir(tmp_path)
    assert not (folder / "record.json").exists()
    assert torch.load(folder / "last.pt", weights_only=True)["progress"]["step"] == 3

    done = run_app(*overrides, torchrun=2)  # the same command again
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("resuming from step 3 of 6 (last.pt)") == 1
    record = RunRecord.read(folder / "record.json")
    assert record.status == "ok" and [r["from_step"] for r in record.resumes] == [3]
    # Bit for bit as the uninterrupted run (times aside), metrics.csv without a gap or a repeat.
    assert computed(metrics_rows(folder)) == computed(metrics_rows(ddp))
    resumed, uninterrupted = (
        torch.load(d / "last.pt", weights_only=True)["model"] for d in (folder, ddp)
    )
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name
    assert record.test_accuracy == RunRecord.read(ddp / "record.json").test_accuracy
