"""Every run record committed under results/ is found again by the command that made it: its
identity hash is what the current configs compose to, wherever the code now lives. Moving a
module, or adding a setting at a neutral default, must not orphan a committed result."""

from __future__ import annotations

from pathlib import Path

import pytest

from lra_bench.identity import run_dir_for
from lra_bench.records import RunRecord, find_all_records
from tests.conftest import REPO, compose_config

COMMITTED = find_all_records(REPO / "results")


def command_of(record: RunRecord, results_dir: Path) -> list[str]:
    """The overrides the record was made with (older records: the bench command's four)."""
    overrides = [o for o in record.overrides if not o.startswith("results_dir=")]
    if not overrides:
        overrides = [
            f"task={record.task}",
            f"model={record.model}",
            f"profile={record.profile}",
            f"seed={record.seed}",
        ]
    return [*overrides, f"results_dir={results_dir}"]


def test_there_are_committed_records():
    assert len(COMMITTED) >= 14


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO / "results")))
def test_committed_record_is_found_by_its_command(path):
    record = RunRecord.read(path)
    results_dir = path.parents[5]  # <results>/runs/<task>/<model>/<profile>/<seed-hash>/record.json
    cfg = compose_config(command_of(record, results_dir))
    assert run_dir_for(cfg) == path.parent
    assert run_dir_for(cfg).name == f"seed{record.seed}-{record.config_hash}"
