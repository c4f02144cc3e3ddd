"""LRA tasks: one module per task, each an official-format loader (and a generator where the
original task is synthetic). A task is chosen by the Hydra `_target_` in `conf/task/`."""
