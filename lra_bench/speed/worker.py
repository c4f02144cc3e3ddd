"""One measurement of the speed protocol, in this process, printed as one JSON line on stdout.
The runner (runner.py) starts a fresh process per (model, length), so that the allocator's
caches, the peak-memory mark and a crash or out-of-memory never carry over to the next one.

    python -m lra_bench.speed.worker measure SETTINGS_JSON --model transformer --length 1024
    python -m lra_bench.speed.worker probe SETTINGS_JSON

`measure`: builds conf/model/<model>.yaml (its own mixer options; width, depth and feed-forward
size from the settings' size preset) for the task's vocabulary and classes, feeds it one fixed
batch of random tokens of shape (batch, length), runs one step under the FLOP counter, `warmup`
untimed steps and `steps` timed ones (each the engine's `train_step`: forward, backward,
optimizer step; bf16 autocast on CUDA as in training), and reports each timed step's seconds,
the FLOPs and the peak memory over all of them.
`probe`: describes the device and measures its peak matmul FLOP/s (fp32 on CPU, bf16 on CUDA).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import traceback
from collections.abc import Callable

import torch

from lra_bench.compose import compose
from lra_bench.engine import train_step
from lra_bench.environment import (
    PeakMemory,
    apply_memory_limit,
    choose_device,
    device_description,
    is_out_of_memory,
)
from lra_bench.speed.settings import GB, SpeedSettings, load_size, task_shape


def describe(device: torch.device) -> dict:
    """device_description plus the precision a step runs in."""
    return {**device_description(device), "precision": "bf16" if device.type == "cuda" else "fp32"}


def model_config(model: str, size: dict):
    """conf/model/<model>.yaml as Hydra composes it alone (no task, profile or experiment
    settings), so every mixer option is the model's own; `n_heads` set where the mixer has it.
    Returns (backbone config, n_heads applied or None)."""
    backbone = compose(config_name=f"model/{model}").model.backbone
    heads = None
    if "mixer" in backbone and "n_heads" in backbone.mixer:
        backbone.mixer.n_heads = size["n_heads"]
        heads = size["n_heads"]
    return backbone, heads


def training_step(
    backbone, size: dict, task: str, length: int, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[], None]]:
    """(model, step): the model of `backbone` at `size` for `task`, and a function that runs one
    training step (the engine's) on one fixed batch of random tokens (batch, length), every
    position real."""
    from hydra.utils import instantiate

    from lra_bench.optim import build_optimizer

    vocab, classes = task_shape(task)
    torch.manual_seed(0)
    model = instantiate(
        backbone,
        vocab_size=vocab,
        num_classes=classes,
        max_length=length,
        d_model=size["d_model"],
        n_layers=size["n_layers"],
        d_ff=size["d_ff"],
    ).to(device)
    model.train()
    # LRA's text settings; the values do not change the cost of a step.
    optimizer = build_optimizer(model, lr=0.05, weight_decay=0.1)
    batch_tensors = (
        torch.randint(1, vocab, (batch, length), device=device),
        torch.full((batch,), length, device=device),
        torch.randint(0, classes, (batch,), device=device),
    )

    def step() -> None:
        train_step(model, optimizer, [batch_tensors], 1, device, "auto")
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return model, step


def prime(backbone, size: dict, task: str, length: int, device: torch.device) -> None:
    """One step of a one-example, short-sequence copy of the model, before the memory baseline
    is taken. The first step of a process pages in torch's kernels and starts its thread pools
    (~85 MB of resident memory on CPU, whatever the model); that belongs to the baseline, not to
    the model. Kept tiny so that memory it frees and the allocator keeps is negligible."""
    try:
        _, step = training_step(backbone, size, task, min(length, 32), 1, device)
        step()
    except Exception:  # a model may reject so short a sequence; the real step will tell
        pass
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(settings: SpeedSettings, model_name: str, length: int, inject_gb: float) -> dict:
    from lra_bench.speed.flops import count_flops

    device = choose_device(settings.device)
    result: dict = {"status": "failed", "error": None, **describe(device)}
    memory = PeakMemory(device)
    try:
        size = load_size(settings.size)
        backbone, result["n_heads"] = model_config(model_name, size)
        prime(backbone, size, settings.task, length, device)
        if settings.memory_limit_gb is not None:
            result["memory_limit"] = apply_memory_limit(device, settings.memory_limit_gb)
        memory.reset()
        if inject_gb:  # tests force an out-of-memory with it
            ballast = torch.ones(int(inject_gb * GB) // 4, device=device)
            result["ballast_bytes"] = ballast.numel() * 4
        model, step = training_step(backbone, size, settings.task, length, settings.batch, device)
        result["params"] = sum(p.numel() for p in model.parameters())
        if settings.count_flops:  # an extra, untimed step: the counter slows the step it watches
            result["flops_per_step"], result["flops_uncounted"] = count_flops(step)
        for _ in range(settings.warmup):
            step()
        seconds = []
        for _ in range(settings.steps):
            tic = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - tic)
        result.update(status="ok", step_seconds=seconds)
    except Exception as error:  # MemoryError is an Exception too
        result["status"] = "oom" if is_out_of_memory(error) else "failed"
        result["error"] = f"{type(error).__name__}: {error}"
        if result["status"] == "failed":
            result["traceback"] = traceback.format_exc()
    result["peak_mem_bytes"] = memory.peak_bytes()
    result["memory_method"] = memory.method
    return result


def probe(settings: SpeedSettings) -> dict:
    from lra_bench.speed.flops import matmul_peak_flops

    device = choose_device(settings.device)
    result = describe(device)
    matmul_size = settings.matmul_size
    if matmul_size is None:
        matmul_size = 8192 if device.type == "cuda" else 2048
    if matmul_size:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        result["peak_flops"] = matmul_peak_flops(device, dtype, matmul_size)
        result["peak_matmul"] = f"{matmul_size}x{matmul_size} {str(dtype)[6:]} matmul"
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lra_bench.speed.worker")
    parser.add_argument("mode", choices=("measure", "probe"))
    parser.add_argument("settings", help="SpeedSettings as JSON (runner.py writes it)")
    parser.add_argument("--model", help="a conf/model/<name>.yaml (measure)")
    parser.add_argument("--length", type=int, help="sequence length (measure)")
    parser.add_argument("--inject-allocation-gb", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = SpeedSettings.from_json(args.settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if args.mode == "probe":
        result = probe(settings)
    else:
        result = measure(settings, args.model, args.length, args.inject_allocation_gb)
    # The last line of stdout is the result; anything a model prints comes before it.
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
