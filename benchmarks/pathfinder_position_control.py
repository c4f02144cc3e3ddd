"""Is a sequence model at chance on Pathfinder broken, or is the task hard for it? A control.

    .venv/bin/python benchmarks/pathfinder_position_control.py [HYDRA_OVERRIDES ...]
        [--steps 1000] [--eval-every 200] [--seed 0] [--threads N] [--out FILE.md]

The model a run of these overrides would train (`model=s4d`, `task.data.downsample=2`, ...;
task=pathfinder and profile=mini unless given), on the very pixels of that run's splits, trained
by the engine's own loop with the run's trainer settings (optimizer and its parameter groups,
schedule, batches; --steps and --eval-every in place of its budget), selected on validation as a
run is, but with a control label in place of Pathfinder's: 1 when
more pixels are bright (id > 100) in the first half of the sequence (the top half of the image)
than in the second. The label needs every position and the order of the sequence, as
connectedness does, but it is a sum over positions, not a path to trace. A model that learns it
well above its majority rate takes in the pixels, their order and the pooling as it should; if
the same model then stays at chance on Pathfinder's own labels, the difficulty is the task's
(LRA_SPEC pitfall 2 is the other half: benchmarks/pathfinder_cnn_check.py shows the labels follow
from the pixels). Prints the validation accuracy at each evaluation and the test accuracy
against the majority rate; writes them as Markdown to --out when given.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pathfinder_cnn_check import (  # noqa: E402
    add_common_arguments,
    load_pixel_task,
    write_report,
)
from lra_bench.engine import TrainerConfig, train_and_evaluate  # noqa: E402
from lra_bench.stages import build_model  # noqa: E402
from tasks.base import TaskData  # noqa: E402

BRIGHT = 100  # pixel id above which a pixel counts as bright (paths and markers; background 0)


def position_label(tokens: np.ndarray) -> torch.Tensor:
    """(N, L) pixel ids -> (N,) int64: 1 where the first half of the sequence holds more pixels
    brighter than BRIGHT than the second half, else 0."""
    bright = torch.as_tensor(np.asarray(tokens) > BRIGHT)
    half = bright.shape[1] // 2
    return (bright[:, :half].sum(1) > bright[:, half:].sum(1)).long()


def relabelled(data: TaskData) -> TaskData:
    """`data` with every split's labels replaced by `position_label` of its pixels."""
    splits = {
        name: dataclasses.replace(split, labels=position_label(split.tokens).numpy())
        for name, split in data.splits.items()
    }
    return dataclasses.replace(data, splits=splits)


def train_control(model, control: TaskData, trainer: TrainerConfig, seed: int, log=print):
    """Trains `model` on `control` (a `relabelled` TaskData) with `trainer`, through the engine's
    `train_and_evaluate` (checkpoints in a temporary folder, deleted after); returns its
    TrainResult (history of validation accuracy, test accuracy of the best validation step)."""
    with tempfile.TemporaryDirectory(prefix="pathfinder-control-") as run_dir:
        return train_and_evaluate(
            model,
            control,
            trainer,
            Path(run_dir),
            torch.device("cpu"),
            seed,
            progress=False,
            log=log,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=200)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides, cfg, data = load_pixel_task(args.overrides)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    source = data.notes.get("source", "?")
    print(f"{cfg.task.name}: {source}; {sizes}", flush=True)
    torch.manual_seed(args.seed)
    model = build_model(cfg, data)
    trainer = TrainerConfig(
        **{
            **OmegaConf.to_container(cfg.trainer, resolve=True),
            "max_steps": args.steps,
            "eval_every": args.eval_every,
        }
    )
    start = time.perf_counter()
    control = relabelled(data)
    result = train_control(
        model, control, trainer, args.seed, log=lambda line: print(line, flush=True)
    )
    history = [(entry["step"], entry["val_accuracy"]) for entry in result.history]
    for step, value in history:
        print(f"step {step}: validation accuracy {100 * value:.1f}%", flush=True)
    test = result.test_accuracy
    majority = control.splits["test"].majority_rate()
    minutes = (time.perf_counter() - start) / 60
    print(
        f"control label: test accuracy {100 * test:.2f}% (majority class {100 * majority:.2f}%),"
        f" {minutes:.1f} min"
    )
    if args.out:
        setup = (
            f"Model {cfg.model.name} ({sum(p.numel() for p in model.parameters())} parameters),"
            f" the run's trainer (lr {trainer.lr}, weight decay {trainer.weight_decay}, batch"
            f" {trainer.batch_size}, {trainer.schedule} schedule, warmup {trainer.warmup_steps})"
            f" for {args.steps} steps, test at the best validation step, seed {args.seed}"
        )
        label = (
            f"Label: 1 when the top half of the image has more pixels brighter than {BRIGHT}"
            " than the bottom half."
        )
        write_report(
            args.out,
            "Pathfinder position control (benchmarks/pathfinder_position_control.py)",
            f"Overrides: `{' '.join(overrides)}`; data: {source} ({sizes}).",
            [setup, label],
            ("step", history),
            (test, majority, minutes),
        )


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    main()
