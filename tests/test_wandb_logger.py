"""logger=wandb, offline: the run's config, metrics, record and learning curve, read back from
the offline W&B run it leaves (tests/wandb_offline.py)."""

import csv
import json

from lra_bench.records import RunRecord
from tests.apps import run_app, smoke_args
from tests.wandb_offline import read_offline_run


def test_an_offline_wandb_run_holds_config_metrics_record_and_plot(tmp_path):
    results, wandb_dir = tmp_path / "results", tmp_path / "wandb"
    done = run_app(
        *smoke_args(results, tmp_path / "data", "logger=wandb", "logger.every=1"),
        WANDB_MODE="offline",
        WANDB_DIR=str(wandb_dir),
    )
    assert done.returncode == 0, done.stdout
    (record_path,) = results.glob("runs/*/*/*/*/record.json")
    record = RunRecord.read(record_path)
    (folder,) = (wandb_dir / "wandb").glob("offline-run-*")
    logged = read_offline_run(folder)

    assert logged["run"].project == "lra-bench"
    assert logged["config"]["model"]["name"] == "transformer"
    assert logged["config"]["trainer"]["max_steps"] == 4
    assert logged["config"]["logger"]["name"] == "wandb"

    # Every metrics.csv row is a W&B history row at its step, under W&B's names.
    with open(record_path.parent / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = [h for h in logged["history"] if "train/loss" in h]
    assert [h["_step"] for h in steps] == [1, 2, 3, 4] == [int(r["step"]) for r in rows]
    for row, step in zip(rows, steps):
        assert abs(step["train/loss"] - float(row["loss"])) < 1e-5 * float(row["loss"])
        assert abs(step["train/lr"] - float(row["lr"])) < 1e-9
    evaluations = {h["_step"]: h["val/accuracy"] for h in logged["history"] if "val/accuracy" in h}
    assert evaluations == {e["step"]: e["val_accuracy"] for e in record.history}

    summary = logged["summary"]
    assert summary["status"] == "ok"
    assert summary["test_accuracy"] == record.test_accuracy
    assert summary["best_step"] == record.best_step
    assert summary["config_hash"] == record.config_hash
    assert "record.json" in logged["files"]
    assert json.loads((folder / "files" / "record.json").read_text())["test_accuracy"] == (
        record.test_accuracy
    )
    (curve,) = [f for f in logged["files"] if f.startswith("media/images/plots/learning_curve")]
    assert (folder / "files" / curve).read_bytes()[:4] == b"\x89PNG"
