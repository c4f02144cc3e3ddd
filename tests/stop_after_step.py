"""The Hydra app, with one rank stopped by SIGTERM after a given optimizer step, as Slurm stops a
job: `torchrun ... tests/stop_after_step.py overrides...` with STOP_RANK and STOP_AFTER_STEP in
the environment (tests/test_distributed_training.py). Only that rank gets the signal; the
ranks must agree to checkpoint and stop together."""

import os
import signal

import lra_bench.engine as engine
from lra_bench.run import main

STOP_RANK = int(os.environ["STOP_RANK"])
STOP_AFTER_STEP = int(os.environ["STOP_AFTER_STEP"])
_train_step = engine.train_step
_steps = 0


def train_step_then_signal(*args, **kwargs):
    global _steps
    loss = _train_step(*args, **kwargs)
    _steps += 1
    if _steps == STOP_AFTER_STEP and int(os.environ.get("RANK", 0)) == STOP_RANK:
        os.kill(os.getpid(), signal.SIGTERM)
    return loss


engine.train_step = train_step_then_signal

if __name__ == "__main__":
    main()
