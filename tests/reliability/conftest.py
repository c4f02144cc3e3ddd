"""Helpers of the reliability suite: smoke runs in this process (composed as the Hydra app
composes them, with its runtime choices), the app's `main` with a command line, and the parts of
a record that must repeat bit for bit when a run is repeated or resumed."""

from __future__ import annotations

import os
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from lra_bench.compose import CONF_DIR
from lra_bench.records import RunRecord

# What differs between two processes of the same run: times, the process, the resumes.
NOT_REPEATED = {
    "started_at",
    "finished_at",
    "wall_seconds",
    "train_seconds",
    "steps_per_second",
    "peak_memory_bytes",
    "resumes",
    "overrides",
}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """One data folder for the suite: the smoke ListOps data are generated once."""
    return tmp_path_factory.mktemp("data")


def compose_run(overrides: list[str]) -> tuple[DictConfig, dict]:
    """(config, Hydra's runtime choices) of `python -m lra_bench.run OVERRIDES`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def smoke_overrides(results, data_root, *extra) -> list[str]:
    return [
        "profile=smoke",
        f"results_dir={results}",
        f"data_root={data_root}",
        "progress=false",
        *extra,
    ]


def smoke(results, data_root, *extra) -> tuple[DictConfig, dict]:
    return compose_run(smoke_overrides(results, data_root, *extra))


def run_main(monkeypatch, capsys, overrides: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `python -m lra_bench.run OVERRIDES`, in this process."""
    from lra_bench.run import main

    monkeypatch.setattr(sys, "argv", ["lra_bench.run", *overrides])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def repeated_part(record: RunRecord) -> dict:
    """The record without what differs between processes (times, pid, resumes) and the settings
    that say where and how verbosely it ran (results_dir, force, ...: not its identity)."""
    from lra_bench.identity import NON_IDENTIFYING_KEYS

    data = {k: v for k, v in record.to_dict().items() if k not in NOT_REPEATED}
    data["environment"] = {k: v for k, v in data["environment"].items() if k != "pid"}
    data["config"] = {k: v for k, v in data["config"].items() if k not in NON_IDENTIFYING_KEYS}
    return data


# The run most tests stop and resume: checkpoints at steps 2 (checkpoint_every), 3 (evaluation),
# 4 (checkpoint_every) and 6 (evaluation, the end).
STANDARD = ["trainer.max_steps=6", "trainer.eval_every=3", "checkpoint_every=2"]


@pytest.fixture(scope="session")
def straight(tmp_path_factory, data_root) -> RunRecord:
    """The standard run, never stopped: what every stopped and resumed one must repeat."""
    from lra_bench.run import run

    results = tmp_path_factory.mktemp("straight")
    record = run(*smoke(results, data_root, *STANDARD))
    assert record.status == "ok", record.error
    return record


class Killed(BaseException):
    """Ends a run the way a kill does: nothing of ours catches it, so no record is written and
    nothing is cleaned up (only the lock's release, which the kernel would do)."""


def stop_at_call(monkeypatch, call: int, action=None) -> list[int]:
    """Makes the `call`-th optimizer step of this process run `action` (default: raise Killed)
    before it starts; returns the list of calls made, as it grows."""
    import lra_bench.engine as engine

    real_step = engine.train_step
    calls: list[int] = []

    def step(*args, **kwargs):
        calls.append(len(calls) + 1)
        if len(calls) == call:
            if action is None:
                raise Killed(f"killed at call {call}")
            action()
        return real_step(*args, **kwargs)

    monkeypatch.setattr(engine, "train_step", step)
    return calls


def run_dir_of(results) -> os.PathLike:
    (run_dir,) = [p for p in results.glob("runs/*/*/*/*") if p.is_dir()]
    return run_dir
