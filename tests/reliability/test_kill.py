"""A run killed with SIGKILL at a random step, before or after its first checkpoint, then started
again with the same command, writes the record an undisturbed run writes, bit for bit (on CPU;
times and process ids aside)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys

import pytest

from lra_bench.run import run
from tests.conftest import REPO
from tests.reliability.conftest import STANDARD, repeated_part, run_dir_of, smoke, smoke_overrides

# The app, killed by SIGKILL when its CALL-th optimizer step starts. One thread, as this test
# process, so that both halves of the run compute exactly as the straight run did.
KILLED_APP = """
import os, signal, sys
import torch
import lra_bench.engine as engine
torch.set_num_threads(1)
real_step, calls = engine.train_step, []
def step(*args, **kwargs):
    calls.append(1)
    if len(calls) == CALL:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(*args, **kwargs)
engine.train_step = step
from lra_bench.run import main
sys.argv = ["lra_bench.run", *OVERRIDES]
main()
"""

# The standard run checkpoints at steps 2, 3, 4 and 6: a kill during step 1 or 2 comes before
# the first one, during steps 3 to 6 after it, and the run resumes from the last one before.
WHEN = {"before the first checkpoint": (1, 2), "after the first checkpoint": (3, 6)}
RESUMED_FROM = {1: None, 2: None, 3: 2, 4: 3, 5: 4, 6: 4}


@pytest.mark.parametrize("when", list(WHEN))
def test_kill_9_then_the_same_command_gives_the_same_record(tmp_path, data_root, straight, when):
    call = random.randint(*WHEN[when])
    overrides = smoke_overrides(tmp_path, data_root, *STANDARD)
    code = KILLED_APP.replace("CALL", str(call)).replace("OVERRIDES", repr(overrides))
    killed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = run_dir_of(tmp_path)
    assert not (run_dir / "record.json").exists()
    assert (run_dir / "last.pt").exists() == (call > 2), f"killed during step {call}"
    again = run(*smoke(tmp_path, data_root, *STANDARD))
    assert again.status == "ok"
    expected = [] if RESUMED_FROM[call] is None else [RESUMED_FROM[call]]
    assert [r["from_step"] for r in again.resumes] == expected, f"killed during step {call}"
    assert repeated_part(again) == repeated_part(straight), f"killed during step {call}"
