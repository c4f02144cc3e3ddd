"""Is this Pathfinder data learnable at all? A small CNN trained on the very splits a run gets.

    .venv/bin/python benchmarks/pathfinder_cnn_check.py [HYDRA_OVERRIDES ...]
        [--epochs 4] [--batch 64] [--lr 1e-3] [--seed 0] [--threads N] [--out FILE.md]

e.g. `task.data.generate.count=20000` (the mini profile's generated `easy` images, 20K of
them) or `task.data.data_dir=/data/lra_release/pathfinder32 task.data.difficulty=hard` (the
official release). The overrides compose as `python -m lra_bench.run` would (task=pathfinder
and profile=mini unless given), and the data come from the same loader and cache, so the CNN
sees exactly the pixels, labels and 80/10/10 split of the sequence models.

Why: LRA_SPEC pitfall 2: a copy of Pathfinder-128 once trained a ResNet to 95% on train and
chance on validation, and "not learning" reports are often data bugs. A sequence model at chance
tells nothing until a model with the right prior (2-D convolutions) shows the labels follow
from the pixels. Prints validation accuracy per epoch, test accuracy and the majority rate, and
writes them as Markdown to --out when given.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lra_bench.compose import compose  # noqa: E402
from lra_bench.environment import cpu_name, git_state  # noqa: E402


def small_cnn(widths: tuple[int, ...] = (32, 64, 128), classes: int = 2) -> nn.Sequential:
    """Pairs of 3x3 conv + BatchNorm + ReLU per width, 2x2 max-pooling between the pairs, a
    global max-pool and a linear head: (B, 1, H, W) pixels in [0, 1] -> (B, classes) logits."""
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(widths):
        if i:
            layers.append(nn.MaxPool2d(2))
        for _ in range(2):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
    return nn.Sequential(
        *layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, classes)
    )


def as_images(tokens: np.ndarray) -> torch.Tensor:
    """(N, L) pixel ids 0..255 of a square image flattened row-major -> (N, 1, s, s) in [0, 1]."""
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise ValueError(f"sequence length {tokens.shape[1]} is not a square image")
    return torch.from_numpy(np.asarray(tokens, dtype=np.float32) / 255.0).view(-1, 1, side, side)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of `images` whose arg-max logit is the label (eval mode, batches of 512)."""
    model.eval()
    with torch.no_grad():
        right = sum(
            (model(images[i : i + 512]).argmax(1) == labels[i : i + 512]).sum().item()
            for i in range(0, len(labels), 512)
        )
    return right / max(len(labels), 1)


def train_cnn(
    train, val, epochs: int, batch: int, lr: float, seed: int, log=print, widths=(32, 64, 128)
):
    """Trains `small_cnn(widths)` on train = (images (N, 1, s, s), labels (N,)) with AdamW;
    returns the model and the validation accuracy after each epoch (the last epoch's model)."""
    torch.manual_seed(seed)
    images, labels = train
    classes = int(max(labels.max().item(), val[1].max().item())) + 1
    model = small_cnn(widths, classes)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels))
        losses = []
        for i in range(0, len(order) - batch + 1, batch):  # whole batches only (BatchNorm)
            rows = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(images[rows]), labels[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        history.append(accuracy(model, *val))
        log(
            f"epoch {epoch + 1}: train loss {np.mean(losses):.3f}, validation accuracy "
            f"{100 * history[-1]:.1f}% ({time.perf_counter() - start:.0f} s)"
        )
    return model, history


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments both Pathfinder checks take (this one and pathfinder_position_control.py):
    the run's Hydra overrides, --seed, --threads and --out."""
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for lra_bench.run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as Markdown")


def load_pixel_task(given_overrides: list[str]):
    """(overrides, cfg, data) of the run these overrides describe (task=pathfinder and
    profile=mini unless given): the same loader and cache as `python -m lra_bench.run`, so a
    check sees exactly the run's pixels, labels and split. Refuses a task without pixel ids."""
    given = {o.split("=", 1)[0] for o in given_overrides}
    defaults = [o for o in ("task=pathfinder", "profile=mini") if o.split("=")[0] not in given]
    overrides = [*defaults, *given_overrides]
    cfg = compose(overrides)
    data = instantiate(cfg.task.data).load(Path(cfg.data_root), progress=cfg.progress)
    if not data.intensities or data.pair:
        raise SystemExit(f"task {cfg.task.name} is not an image of pixel ids (one input)")
    return overrides, cfg, data


def write_report(out: Path, title: str, data_line: str, setup: list[str], curve, result) -> None:
    """A check's Markdown: title, the overrides and data, `setup` sentences with the threads, CPU
    and commit appended to the first, the validation curve (name of its x, [(x, accuracy)]) and
    result = (test accuracy, majority rate, minutes)."""
    git = git_state()
    where = (
        f", {torch.get_num_threads()} thread(s), {cpu_name()}; git {git['commit'][:7]}"
        f"{' (dirty)' if git['dirty'] else ''}."
    )
    (x_name, points), (test, majority, minutes) = curve, result
    lines = [
        f"# {title}",
        "",
        data_line,
        setup[0] + where,
        *setup[1:],
        "",
        f"| {x_name} | validation accuracy (%) |",
        "|---|---|",
        *(f"| {x} | {100 * value:.1f} |" for x, value in points),
        "",
        f"Test accuracy {100 * test:.2f}% against a majority class of {100 * majority:.2f}%;"
        f" {minutes:.1f} min of training and evaluation.",
    ]
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides, cfg, data = load_pixel_task(args.overrides)
    split = {
        name: (as_images(s.tokens), torch.tensor(np.asarray(s.labels), dtype=torch.int64))
        for name, s in data.splits.items()
    }
    sizes = ", ".join(f"{name} {len(labels)}" for name, (_, labels) in split.items())
    source = data.notes.get("source", "?")
    print(f"{cfg.task.name}: {source}; {sizes}", flush=True)
    start = time.perf_counter()
    model, history = train_cnn(
        split["train"],
        split["val"],
        args.epochs,
        args.batch,
        args.lr,
        args.seed,
        log=lambda line: print(line, flush=True),
    )
    test = accuracy(model, *split["test"])
    majority = data.splits["test"].majority_rate()
    minutes = (time.perf_counter() - start) / 60
    print(
        f"test accuracy {100 * test:.2f}% (majority class {100 * majority:.2f}%), {minutes:.1f} min"
    )
    if args.out:
        setup = (
            f"Small CNN ({sum(p.numel() for p in model.parameters())} parameters), AdamW lr"
            f" {args.lr}, batch {args.batch}, seed {args.seed}"
        )
        curve = [(i + 1, v) for i, v in enumerate(history)]
        write_report(
            args.out,
            "Pathfinder learnability check (benchmarks/pathfinder_cnn_check.py)",
            f"Overrides: `{' '.join(overrides)}`; data: {source} ({sizes}).",
            [setup],
            ("epoch", curve),
            (test, majority, minutes),
        )


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    main()
