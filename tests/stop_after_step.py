"""The Hydra app, with one rank stopped by SIGTERM after a given optimizer step, as Slurm stops a
job: `torchrun ... tests/stop_after_step.py overrides...` with STOP_RANK and STOP_AFTER_STEP in
the environment (tests/test_distributed_training.py). Only that rank gets the signal; the
ranks must agree to checkpoint and stop together. Rank 0 ends its metrics log a second late (as
on a slow file system): the other ranks must wait for it, for torchrun stops every process as
soon as one has ended."""

import os
import signal
import time

import lra_bench.engine as engine
from lra_bench.metrics_log import MetricsLog
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


_finish = MetricsLog.finish


def finish_late(self, record):
    time.sleep(1.0)
    return _finish(self, record)


engine.train_step = train_step_then_signal
MetricsLog.finish = finish_late

if __name__ == "__main__":
    main()
