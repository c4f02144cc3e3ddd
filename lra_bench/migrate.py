"""Rewriting run records of schema 1 as schema 2: the identity hash no longer covers where the
code lives (`_target_`, `_partial_`), so each record gets its new config_hash and variant,
recomputed from the resolved config it stored, and its run directory the new name. Nothing is
retrained; a record that already has a directory under the new name is left as it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lra_bench.identity import config_hash
from lra_bench.records import RECORD_NAME, SCHEMA_VERSION, RunRecord, find_all_records


def migrate_record(path: Path) -> str:
    """Migrates one record file; returns what was done, in one line."""
    data = json.loads(Path(path).read_text())
    if data.get("schema") == SCHEMA_VERSION:
        return f"{path}: already schema {SCHEMA_VERSION}"
    if data.get("schema") != 1:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, can migrate only schema 1")
    config = data["config"]
    old = data["config_hash"]
    data.update(
        schema=SCHEMA_VERSION,
        config_hash=config_hash(config),
        variant=config_hash(config, include_seed=False),
    )
    record = RunRecord.from_dict(data, where=str(path))
    run_dir = Path(path).parent
    new_dir = run_dir.with_name(run_dir.name.replace(old, record.config_hash))
    if new_dir != run_dir and new_dir.exists():
        return f"{path}: left alone, {new_dir} exists"
    record.write(run_dir)
    if new_dir != run_dir:
        os.replace(run_dir, new_dir)
    return f"{run_dir} -> {new_dir.name}"


def migrate_results(results_dir: Path) -> list[str]:
    """Migrates every record under `results_dir` (nested result sets included); returns one line
    per record."""
    return [
        migrate_record(path) for path in find_all_records(results_dir) if path.name == RECORD_NAME
    ]
