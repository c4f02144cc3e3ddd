"""hydra/sweeper=tune: an Optuna study of 5 trials, killed after its third, resumed by the same
command, ends with 5 finished trials; the trials are runs of their own result set."""

import os
import signal
import subprocess
import time

import pytest

from lra_bench.records import RunRecord
from tests.apps import app_command, app_env, run_app, smoke_args

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def study_trials(results):
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    import optuna

    storage = f"sqlite:///{results / 'tuning' / 'listops-transformer-smoke' / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name="listops-transformer-smoke", storage=storage).trials
    except (KeyError, ValueError):  # not created yet
        return []


def states(trials):
    return [t.state.name for t in trials]


def test_a_killed_study_resumes_to_its_trial_count(tmp_path):
    results = tmp_path / "results"
    command = app_command(
        "-m",
        "hydra/sweeper=tune",
        "hydra.sweeper.n_trials=5",
        "model=transformer",
        *smoke_args(results, tmp_path / "data"),
    )
    sweep = subprocess.Popen(
        command,
        env=app_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:  # kill the sweep once 3 trials finished and the 4th one's run started, as a lost
        # node would (before its run starts, a trial may hold only some of its parameters)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and sweep.poll() is None:
            runs = list(results.glob("tuning/*/runs/*/*/*/*/config.yaml"))
            found = states(study_trials(results)) if runs else []
            if found.count("COMPLETE") == 3 and "RUNNING" in found and len(runs) == 4:
                break
            time.sleep(0.2)
        assert sweep.poll() is None, "the sweep ended before it could be interrupted"
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    interrupted = study_trials(results)
    assert states(interrupted) == ["COMPLETE"] * 3 + ["RUNNING"]

    done = run_app(*command[3:])  # the same command again
    assert done.returncode == 0, done.stdout
    assert "3 of 5 trials finished before; 2 to run" in done.stdout
    trials = study_trials(results)
    assert states(trials).count("COMPLETE") == 5
    (lost,) = [t for t in trials if t.state.name == "FAIL"]
    assert lost.user_attrs["interrupted"] is True
    # The lost trial was tried again first, with its parameters.
    assert trials[4].params == interrupted[3].params == lost.params

    # The objective is the best validation accuracy of each trial's run.
    runs = [RunRecord.read(p) for p in results.glob("tuning/*/runs/*/*/*/*/record.json")]
    assert len(runs) == 5 and all(r.status == "ok" for r in runs)
    assert all(r.config["tuning"] == "listops-transformer-smoke" for r in runs)
    values = sorted(t.value for t in trials if t.state.name == "COMPLETE")
    assert values == sorted(r.best_val_accuracy for r in runs)
    # Trials live in their own result set: no canonical record, no canonical leaderboard.
    assert not (results / "runs").exists() and not (results / "leaderboard.csv").exists()
    assert (results / "tuning" / "listops-transformer-smoke" / "leaderboard.csv").exists()
