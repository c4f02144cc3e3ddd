"""Real multiruns, as `make sweep` starts them: 2 models x 2 seeds with the joblib launcher,
the same sweep again (every run skipped), and a sweep with a job that fails (recorded,
summarised, the sweep finished)."""

import pytest

from lra_bench.records import RunRecord
from lra_bench.sweep.outcome import read_outcomes
from tests.apps import run_app, smoke_args, sweep_summary

SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "model=transformer,s4d",
    "seed=0,1",
]


def records(results):
    return {
        (r.model, r.task, r.seed): r
        for r in (RunRecord.read(p) for p in results.glob("runs/*/*/*/*/record.json"))
    }


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The results folder after the first sweep, and its output."""
    results = tmp_path_factory.mktemp("results")
    done = run_app(*SWEEP, *smoke_args(results, results / "data"))
    assert done.returncode == 0, done.stdout
    return results, done.stdout


def test_a_joblib_sweep_runs_the_product_and_summarises_it(swept):
    results, output = swept
    found = records(results)
    assert sorted(found) == [
        ("s4d", "listops", 0),
        ("s4d", "listops", 1),
        ("transformer", "listops", 0),
        ("transformer", "listops", 1),
    ]
    assert all(r.status == "ok" for r in found.values())
    assert all(r.environment["threads"] == 1 for r in found.values())  # 1 core per job here
    sweep_dir, summary = sweep_summary(results)
    assert summary.splitlines()[0].startswith("sweep: 4 job(s) in ")
    assert "4 ran, 0 skipped (finished before), 0 failed, 0 died" in summary
    assert [o.outcome for o in read_outcomes(sweep_dir)] == ["ran"] * 4
    # One live line per job, then the summary with the sweep's leaderboard rows.
    assert sum(line.startswith("[sweep] ") for line in output.splitlines()) == 4
    assert "leaderboard rows of this sweep" in output
    assert "listops | s4d | smoke" in summary and "over 2 seed(s)" in summary


def test_the_same_sweep_again_skips_every_run(swept):
    results, _ = swept
    before = {key: r.finished_at for key, r in records(results).items()}
    done = run_app(*SWEEP, *smoke_args(results, results / "data"))
    assert done.returncode == 0, done.stdout
    sweep_dir, summary = sweep_summary(results)
    assert "0 ran, 4 skipped (finished before), 0 failed, 0 died" in summary
    assert [o.outcome for o in read_outcomes(sweep_dir)] == ["skipped"] * 4
    assert {key: r.finished_at for key, r in records(results).items()} == before


def test_a_failed_job_is_recorded_and_summarised_and_the_sweep_ends(swept):
    results, _ = swept
    # Retrieval's data are not there (they come from LRA's release): that job fails while
    # loading; the ListOps one had finished before.
    done = run_app(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model=transformer",
        "task=listops,retrieval",
        "seed=0",
        *smoke_args(results, results / "data"),
    )
    assert done.returncode == 1, done.stdout  # a job failed: the sweep says so
    sweep_dir, summary = sweep_summary(results)
    assert "0 ran, 1 skipped (finished before), 1 failed, 0 died" in summary
    failed = records(results)[("transformer", "retrieval", 0)]
    assert failed.status == "failed" and "AAN data not found" in failed.error
    (row,) = [line for line in summary.splitlines() if line.startswith("1 ")]
    assert "retrieval" in row and "failed" in row and "FileNotFoundError: AAN data" in row
    assert "retrieval | transformer | smoke" in summary and "1 failed" in summary
