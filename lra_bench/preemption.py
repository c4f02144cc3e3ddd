"""The signals a scheduler sends a job before it stops it, turned into checkpoints.

Slurm sends SIGTERM when it preempts or cancels a job (then SIGKILL after its KillWait), and the
signal of `--signal=USR1@<seconds>` that long before the time limit. The trainer reads the
flags set here after every optimizer step:

    SIGUSR1  write a checkpoint now and go on training (a time limit is near)
    SIGTERM  write a checkpoint and stop (`Preempted`); the same command resumes the run
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Preempted(Exception):
    """Training stopped at `step` on a signal, after writing a checkpoint."""

    def __init__(self, signal_number: int, step: int) -> None:
        self.signal_number = signal_number
        self.step = step
        name = signal.Signals(signal_number).name
        super().__init__(f"stopped by {name} at step {step}; a checkpoint was written")


class StopSignals:
    """Within the block, SIGTERM and SIGUSR1 set flags instead of ending the process; the
    handlers that were there before are put back at the end. Outside the main thread (where
    Python cannot install handlers) the flags are never set."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self.checkpoint_requested = False
        self._previous: dict[int, object] = {}

    def _on_stop(self, number: int, frame: FrameType | None) -> None:
        self.stop_signal = number

    def _on_checkpoint(self, number: int, frame: FrameType | None) -> None:
        self.checkpoint_requested = True

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number, handler in (
                (signal.SIGTERM, self._on_stop),
                (signal.SIGUSR1, self._on_checkpoint),
            ):
                self._previous[number] = signal.signal(number, handler)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
