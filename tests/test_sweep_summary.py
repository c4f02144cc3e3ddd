"""A sweep's outcome files, live lines and summary table (lra_bench/sweep/), without running
one (tests/test_sweeps.py runs real ones)."""

from hydra.core.utils import JobReturn, JobStatus

from lra_bench.sweep.callback import record_crash
from lra_bench.sweep.monitor import LogRelay, finished_line
from lra_bench.sweep.outcome import Job, JobOutcome, read_outcomes
from lra_bench.sweep.summary import counts_line, job_table, varying_overrides


def outcome(job, seed_override, model="transformer", **fields):
    overrides = [f"model={model}", f"seed={seed_override}", "profile=smoke", "results_dir=/r"]
    return JobOutcome(job=job, overrides=overrides, **fields)


def test_outcomes_round_trip_through_their_files(tmp_path):
    job = Job(number=3, overrides=["seed=1"], folder=tmp_path / "3")
    job.started().write(job.folder)
    (started,) = read_outcomes(tmp_path)
    assert started.outcome == "started" and not started.finished and started.job == 3
    job.fail("refused", "seed=-1: expected an integer")
    (failed,) = read_outcomes(tmp_path)
    assert failed.finished and failed.status == "refused" and "seed=-1" in failed.error


def failed_return(error):
    job_return = JobReturn()
    job_return.status, job_return._return_value = JobStatus.FAILED, error
    return job_return


def test_a_job_that_raised_is_crashed_unless_it_said_why_first(tmp_path):
    job = Job(number=0, overrides=["seed=0"], folder=tmp_path / "0")
    job.started().write(job.folder)
    record_crash(job, failed_return(RuntimeError("boom")))
    (crashed,) = read_outcomes(tmp_path)
    assert (crashed.outcome, crashed.status, crashed.error) == (
        "failed",
        "crashed",
        "RuntimeError: boom",
    )

    stopped = Job(number=1, overrides=["seed=1"], folder=tmp_path / "1")
    stopped.fail("stopped", "stopped by SIGTERM at step 3; the same sweep resumes it")
    record_crash(stopped, failed_return(RuntimeError("Preempted")))  # the app re-raised
    assert read_outcomes(tmp_path)[1].status == "stopped"


def test_the_table_says_what_ran_was_skipped_failed_or_died():
    outcomes = [
        outcome(
            0,
            0,
            outcome="ran",
            status="ok",
            best_val_accuracy=0.25,
            test_accuracy=0.2,
            seconds=7.4,
            task="listops",
            profile="smoke",
            seed=0,
        ),
        outcome(1, 1, outcome="skipped", status="ok", test_accuracy=0.3, seconds=0.2),
        outcome(
            2,
            0,
            model="s4d",
            outcome="failed",
            status="failed",
            error="FileNotFoundError: AAN data not found\n  (import it)",
            seconds=3,
        ),
        outcome(3, 1, model="s4d"),  # still `started`: its process died
    ]
    lines = job_table(outcomes)
    assert lines[0].split() == [
        "job",
        "task",
        "model",
        "profile",
        "seed",
        "outcome",
        "status",
        "val",
        "%",
        "test",
        "%",
        "time",
        "why",
    ]  # no `overrides` column: the sweep varies only model and seed, which have their own
    assert lines[1].split()[:10] == [
        "0",
        "listops",
        "transformer",
        "smoke",
        "0",
        "ran",
        "ok",
        "25.00",
        "20.00",
        "7",
    ]
    assert "skipped" in lines[2] and lines[2].rstrip().endswith("finished before")
    assert "s4d" in lines[3] and "FileNotFoundError: AAN data not found (import it)" in lines[3]
    assert " died " in lines[4] and "ended without one" in lines[4]
    assert counts_line(outcomes, 65) == (
        "sweep: 4 job(s) in 65 s: 1 ran, 1 skipped (finished before), 1 failed, 1 died"
    )


def test_overrides_column_holds_what_varies_beyond_the_own_columns():
    outcomes = [
        outcome(0, 0, outcome="ran"),
        outcome(1, 0, outcome="ran"),
    ]
    outcomes[0].overrides.append("trainer.lr=0.001")
    outcomes[1].overrides.append("trainer.lr=0.01")
    assert varying_overrides(outcomes) == {0: "trainer.lr=0.001", 1: "trainer.lr=0.01"}
    assert "overrides" in job_table(outcomes)[0]


def test_finished_line_and_log_relay(tmp_path):
    done = outcome(
        2, 1, outcome="ran", status="ok", best_val_accuracy=0.5, test_accuracy=0.4, seconds=8
    )
    assert finished_line(done, 3, 4) == (
        "[sweep] 3 of 4 done | job 2 model=transformer seed=1 profile=smoke: "
        "ran ok, best val 50.00%, test 40.00%, 8 s"
    )
    oom = outcome(3, 0, outcome="failed", status="oom", error="OutOfMemoryError: CUDA", seconds=2)
    assert finished_line(oom, 4, 4).endswith(": failed oom, 2 s: OutOfMemoryError: CUDA")
    failed = outcome(3, 0, outcome="failed", status="failed", error="ValueError: x", seconds=2)
    assert finished_line(failed, 4, 4).endswith(": failed, 2 s: ValueError: x")
    logs = tmp_path / "1234"
    logs.mkdir()
    out = logs / "1234_0_log.out"
    out.write_text(
        "run directory: x\nevaluate val: 1/1\x1b[A\ntrain listops:  50%|##   | 2/4"
        "\rtrain listops: 100%|####| 4/4"
    )
    relay = LogRelay(tmp_path, bar_every=0)
    assert relay.poll({"1234": "job 5"}) == [
        "[job 5] run directory: x",
        "[job 5] evaluate val: 1/1",  # no cursor movement relayed
        "[job 5] train listops: 100%|####| 4/4",  # the bar's latest state, not every update
    ]
    with open(out, "a") as handle:
        handle.write("\nthis run: test accuracy 40.00%\n")
    assert relay.poll({"1234": "job 5"}) == [
        "[job 5] train listops: 100%|####| 4/4",
        "[job 5] this run: test accuracy 40.00%",
    ]
