"""8 runs and 4 leaderboard refreshes at once, as separate processes on one results folder and one
data folder: no record is lost, the data and cache are built once, and the table left on disk
is whole and counts every run. Slow (12 processes that each import torch): `make test-slow`."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from lra_bench.records import RunRecord, find_records
from tests.conftest import REPO


@pytest.mark.slow
def test_eight_runs_and_four_refreshes_at_once_lose_nothing(tmp_path):
    results, data = tmp_path / "results", tmp_path / "data"
    results.mkdir()
    common = ["profile=smoke", f"results_dir={results}", f"data_root={data}", "progress=false"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "lra_bench.run", *common, f"seed={seed}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in range(8)
    ]
    refreshes = [
        subprocess.Popen(
            [sys.executable, "-m", "lra_bench.cli", "leaderboard", "--results", str(results)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for process in runs + refreshes:
        output, _ = process.communicate(timeout=1200)
        assert process.returncode == 0, output
    records = [RunRecord.read(path) for path in find_records(results)]
    assert sorted(r.seed for r in records) == list(range(8))
    assert {r.status for r in records} == {"ok"}
    assert len({r.data_fingerprint for r in records}) == 1
    assert (
        len([p for p in (data / "cache" / "listops").iterdir() if not p.name.startswith(".")]) == 1
    )
    table = pd.read_csv(results / "leaderboard.csv")
    assert table.seeds.tolist() == [8] and table.failed.tolist() == [0]
    assert not list(results.rglob(".*.tmp-*"))
