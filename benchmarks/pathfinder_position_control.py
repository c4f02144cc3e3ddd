"""Is a sequence model at chance on Pathfinder broken, or is the task hard for it? A control.

    .venv/bin/python benchmarks/pathfinder_position_control.py [HYDRA_OVERRIDES ...]
        [--steps 1000] [--eval-every 200] [--seed 0] [--threads N] [--out FILE.md]

The model a run of these overrides would train (`model=s4d`, `task.data.downsample=2`, ...;
task=pathfinder and profile=mini unless given), on the very pixels of that run's splits, with its
batch size, learning rate and weight decay, but a control label in place of Pathfinder's: 1 when
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
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pathfinder_cnn_check import (  # noqa: E402
    add_common_arguments,
    load_pixel_task,
    write_report,
)
from lra_bench.stages import build_model  # noqa: E402

BRIGHT = 100  # pixel id above which a pixel counts as bright (paths and markers; background 0)


def position_label(tokens: np.ndarray) -> torch.Tensor:
    """(N, L) pixel ids -> (N,) int64: 1 where the first half of the sequence holds more pixels
    brighter than BRIGHT than the second half, else 0."""
    bright = torch.as_tensor(np.asarray(tokens) > BRIGHT)
    half = bright.shape[1] // 2
    return (bright[:, :half].sum(1) > bright[:, half:].sum(1)).long()


def accuracy(model, tokens: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> float:
    """Fraction of sequences (all positions real) whose arg-max logit is the label (eval mode)."""
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            rows = tokens[i : i + batch]
            lengths = torch.full((len(rows),), rows.shape[1])
            right += (model(rows, lengths).argmax(-1) == labels[i : i + batch]).sum().item()
    model.train()
    return right / max(len(labels), 1)


def train_control(model, train, val, steps, eval_every, batch, lr, weight_decay, seed, log=print):
    """AdamW on train = (tokens (N, L) long, labels (N,)), batches drawn with replacement;
    returns [(step, validation accuracy)] at every `eval_every` steps and at the last."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    tokens, labels = train
    lengths = torch.full((batch,), tokens.shape[1])
    history, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        rows = torch.randint(0, len(labels), (batch,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(tokens[rows], lengths), labels[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % eval_every == 0 or step == steps:
            history.append((step, accuracy(model, *val)))
            log(
                f"step {step}: train loss {loss.item():.3f}, validation accuracy "
                f"{100 * history[-1][1]:.1f}% ({time.perf_counter() - start:.0f} s)"
            )
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=200)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides, cfg, data = load_pixel_task(args.overrides)
    split = {
        name: (torch.as_tensor(s.tokens.astype(np.int64)), position_label(s.tokens))
        for name, s in data.splits.items()
    }
    sizes = ", ".join(f"{name} {len(labels)}" for name, (_, labels) in split.items())
    source = data.notes.get("source", "?")
    print(f"{cfg.task.name}: {source}; {sizes}", flush=True)
    torch.manual_seed(args.seed)
    model = build_model(cfg, data)
    trainer = cfg.trainer
    start = time.perf_counter()
    history = train_control(
        model,
        split["train"],
        split["val"],
        args.steps,
        args.eval_every,
        trainer.batch_size,
        trainer.lr,
        trainer.weight_decay,
        args.seed,
        log=lambda line: print(line, flush=True),
    )
    test_tokens, test_labels = split["test"]
    test = accuracy(model, test_tokens, test_labels)
    majority = max(test_labels.float().mean().item(), 1 - test_labels.float().mean().item())
    minutes = (time.perf_counter() - start) / 60
    print(
        f"control label: test accuracy {100 * test:.2f}% (majority class {100 * majority:.2f}%),"
        f" {minutes:.1f} min"
    )
    if args.out:
        setup = (
            f"Model {cfg.model.name} ({sum(p.numel() for p in model.parameters())} parameters),"
            f" AdamW lr {trainer.lr}, weight decay {trainer.weight_decay}, batch"
            f" {trainer.batch_size}, {args.steps} steps, seed {args.seed}"
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
