"""Synthetic run records for the leaderboard tests: valid RunRecords with the values a test
names, written where the leaderboard looks for them."""

from __future__ import annotations

from itertools import count
from pathlib import Path

from lra_bench.records import SCHEMA_VERSION, RunRecord

TARGETS = {
    "listops": "tasks.listops.ListOps",
    "text": "tasks.text.Text",
    "retrieval": "tasks.retrieval.Retrieval",
    "image": "tasks.image.Image",
    "pathfinder": "tasks.pathfinder.Pathfinder",
    "pathx": "tasks.pathfinder.Pathfinder",
}
_serial = count()


def record(
    task="listops",
    model="transformer",
    profile="mini",
    seed=0,
    status="ok",
    test=0.4,
    val=None,
    variant="v1",
    parameters=1000,
    protocol=None,
    majority=0.17,
    commit="0123456789abcdef",
    device="AMD EPYC",
) -> dict:
    """A record as a dict. `protocol`, where given, is the record's (a self-pretrained run's,
    naming a pretraining run); `val` defaults to `test`."""
    config = {"task": {"name": task, "data": {"_target_": TARGETS.get(task, "x.Y")}}}
    spt = (
        {} if protocol is None else {"protocol": protocol, "pretrained_from": {"config_hash": "p"}}
    )
    return {
        **spt,
        "variant": variant,
        "config_hash": f"{variant}-{protocol or 'scratch'}-{seed}",
        "error": None if status == "ok" else "it broke",
        "schema": SCHEMA_VERSION,
        "task": task,
        "model": model,
        "profile": profile,
        "seed": seed,
        "status": status,
        "test_accuracy": test if status == "ok" else None,
        "val_accuracy": test if val is None else val,
        "test_majority_rate": majority,
        "parameters": parameters,
        "steps_per_second": 10.0,
        "config": config,
        "git_commit": commit,
        "git_dirty": False,
        "environment": {"device_name": device},
    }


def write_all(root: Path, records: list[dict]) -> None:
    """Each record into its own run folder under root/runs/."""
    for data in records:
        run_dir = Path(root) / "runs" / f"run{next(_serial)}"
        run_dir.mkdir(parents=True)
        RunRecord.from_dict(data).write(run_dir)
