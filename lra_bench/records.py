"""The run record: one JSON file per run (`<run_dir>/record.json`), written atomically. The
leaderboard is computed from these files only.

Fields (SCHEMA_VERSION 1):
  schema, task, model, profile, seed, status (ok | failed | diverged | oom), error,
  config (resolved), config_hash, variant (the config hash without the seed), git_commit, git_dirty,
  data_fingerprint, validation_is_test, split_sizes, test_majority_rate,
  parameters, kernel_backends,
  best_step, best_val_accuracy, val_accuracy, test_accuracy, steps,
  train_seconds, wall_seconds, steps_per_second, peak_memory_bytes, final_train_loss,
  environment (device, device_name, torch, cuda, python, threads), history, started_at, finished_at
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.files import replaced_atomically

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
STATUSES = ("ok", "failed", "diverged", "oom")
REQUIRED_FIELDS = ("schema", "task", "model", "profile", "seed", "status")


def write_record(record: dict, run_dir: Path) -> Path:
    """Writes `record` to run_dir/record.json through a temporary file and a rename, so a
    reader sees the old record or the new one, never half of one."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status {record.get('status')!r} not in {STATUSES}")
    path = Path(run_dir) / RECORD_NAME
    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_record(path: Path) -> dict:
    """One record; ValueError naming the file if it is not a valid record."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        raise ValueError(f"{path}: run record lacks {', '.join(missing)}")
    if record["schema"] != SCHEMA_VERSION:
        raise ValueError(f"{path}: record schema {record['schema']}, expected {SCHEMA_VERSION}")
    return record


def find_records(results_dir: Path) -> list[Path]:
    return sorted(Path(results_dir).rglob(RECORD_NAME))
