"""One measurement of the LRA Table 2 protocol, in this process, printed as one JSON line on
stdout. `lra_bench.speed` starts a fresh process per (model, length), so that the allocator's
caches, the peak-memory mark and a crash or out-of-memory never carry over to the next one.

    python -m lra_bench.speed_worker measure --model transformer --task text --size lra_text \
        --length 1024 --batch 32 --warmup 3 --steps 10 [--device auto] [--memory-limit-gb G]
    python -m lra_bench.speed_worker probe [--device auto] [--matmul-size N]

`measure`: builds conf/model/<model>.yaml (its own mixer options; width, depth and feed-forward
size from the conf/speed/sizes.yaml preset) for the task's vocabulary and classes, feeds it one
fixed batch of random tokens of shape (batch, length), runs one step under the FLOP counter,
`warmup` untimed steps and `steps` timed ones (each a full training step: forward, backward,
optimizer step; bf16 autocast on CUDA as in training), and reports each timed step's seconds,
the FLOPs and the peak memory over all of them.
`probe`: describes the device and measures its peak matmul FLOP/s (fp32 on CPU, bf16 on CUDA).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable

import torch
import torch.nn.functional as F

from lra_bench import REPO_ROOT

# (vocabulary incl. padding, classes) of each task's token sequences; the speed protocol needs
# only shapes, so no data set is read. Retrieval (two documents per example) is not covered.
TASK_SHAPES = {
    "text": (257, 2),  # LRA's byte-level IMDB: 256 bytes + padding
    "listops": (16, 10),
    "image": (256, 10),  # grey-level CIFAR-10 pixels as tokens
    "pathfinder": (256, 2),
}
SIZES_FILE = REPO_ROOT / "conf" / "speed" / "sizes.yaml"
GB = 1e9  # memory is reported in GB (10^9 bytes), as the LRA paper's Table 2


def load_size(name: str) -> dict:
    """The model size preset `name` of conf/speed/sizes.yaml: d_model, n_layers, d_ff, n_heads."""
    from omegaconf import OmegaConf

    sizes = OmegaConf.to_container(OmegaConf.load(SIZES_FILE))
    if name not in sizes:
        raise ValueError(f"size {name!r} is not in {SIZES_FILE}; choose from {sorted(sizes)}")
    return sizes[name]


def _status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (Linux)."""
    with open("/proc/self/status") as handle:
        match = re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1))


class PeakMemory:
    """Peak memory of this process from `reset()` on.

    CUDA: the caching allocator's peak of allocated bytes (tensors; not the CUDA context).
    CPU (Linux): the resident-set high-water mark above the resident set at reset; writing "5"
    to /proc/self/clear_refs sets the mark (VmHWM) back to the current RSS. Where that fails the
    un-resettable ru_maxrss is used, which is right only when the measurement's peak exceeds the
    start-up peak; `method` says which one was used.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0
        self.method = "cuda allocator peak" if device.type == "cuda" else ""

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.baseline = _status_kib("VmRSS") * 1024
            self.method = "VmHWM - VmRSS at reset"
        except OSError:
            self.baseline = _status_kib("VmRSS") * 1024 if sys.platform == "linux" else 0
            self.method = "ru_maxrss - RSS at start (not resettable)"

    def peak_bytes(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.method.startswith("VmHWM"):
            return _status_kib("VmHWM") * 1024 - self.baseline
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024 - self.baseline


def apply_memory_limit(device: torch.device, gigabytes: float) -> str:
    """Caps what this process may allocate from now on at `gigabytes` more; returns how.

    CUDA: the allocator's per-process fraction of the device. CPU: RLIMIT_DATA (private writable
    memory: heap and anonymous mappings) at its current size plus the cap, so that an
    allocation past it fails with an out-of-memory error instead of swapping or being killed.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gigabytes * GB / total), device)
        return f"cuda memory fraction {min(1.0, gigabytes * GB / total):.4f}"
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _status_kib("VmData") * 1024 + int(gigabytes * GB)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return f"RLIMIT_DATA {limit} bytes"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, Python's MemoryError, or torch's CPU allocator failing (a RuntimeError)."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        phrase in text for phrase in ("can't allocate memory", "not enough memory", "out of memory")
    )


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_name() -> str:
    from lra_bench.environment import cpu_name as read_cpu_name

    return read_cpu_name()


def describe(device: torch.device) -> dict:
    """The facts a speed row or header needs about where it ran."""
    return {
        "pid": os.getpid(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "precision": "bf16" if device.type == "cuda" else "fp32",
    }


def compose_model_config(model: str, size: dict):
    """conf/model/<model>.yaml as Hydra composes it alone (no task, profile or experiment
    settings), so every mixer option is the model's own; `n_heads` set where the mixer has it.
    Returns (backbone config, n_heads applied or None)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=f"model/{model}")
    backbone = cfg.model.backbone
    heads = None
    if "mixer" in backbone and "n_heads" in backbone.mixer:
        backbone.mixer.n_heads = size["n_heads"]
        heads = size["n_heads"]
    return backbone, heads


def training_step(
    backbone, size: dict, task: str, length: int, batch: int, device: torch.device
) -> tuple[torch.nn.Module, Callable[[], None]]:
    """(model, step): the model of `backbone` at `size` for `task`, and a function that runs one
    full training step (forward, backward, AdamW step; bf16 autocast on CUDA, as in training)
    on one fixed batch of random tokens (batch, length), every position real."""
    from hydra.utils import instantiate

    from lra_bench.engine import autocast_context
    from lra_bench.optim import build_optimizer

    vocab, classes = TASK_SHAPES[task]
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
    tokens = torch.randint(1, vocab, (batch, length), device=device)
    lengths = torch.full((batch,), length, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, "auto"):
            logits = model(tokens, lengths)
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
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


def measure(args: argparse.Namespace) -> dict:
    from lra_bench.flops import count_flops

    device = choose_device(args.device)
    result: dict = {"status": "failed", "error": None, **describe(device)}
    memory = PeakMemory(device)
    try:
        size = load_size(args.size)
        backbone, result["n_heads"] = compose_model_config(args.model, size)
        prime(backbone, size, args.task, args.length, device)
        if args.memory_limit_gb is not None:
            result["memory_limit"] = apply_memory_limit(device, args.memory_limit_gb)
        memory.reset()
        if args.inject_allocation_gb:  # tests force an out-of-memory with it
            ballast = torch.ones(int(args.inject_allocation_gb * GB) // 4, device=device)
            result["ballast_bytes"] = ballast.numel() * 4
        model, step = training_step(backbone, size, args.task, args.length, args.batch, device)
        result["params"] = sum(p.numel() for p in model.parameters())
        if args.count_flops:  # an extra, untimed step: the counter slows the step it watches
            result["flops_per_step"], result["flops_uncounted"] = count_flops(step)
        for _ in range(args.warmup):
            step()
        seconds = []
        for _ in range(args.steps):
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


def probe(args: argparse.Namespace) -> dict:
    from lra_bench.flops import matmul_peak_flops

    device = choose_device(args.device)
    result = describe(device)
    if args.matmul_size:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        result["peak_flops"] = matmul_peak_flops(device, dtype, args.matmul_size)
        result["peak_matmul"] = f"{args.matmul_size}x{args.matmul_size} {str(dtype)[6:]} matmul"
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lra_bench.speed_worker")
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("measure", help="one (model, length) measurement")
    one.add_argument("--model", required=True, help="a conf/model/<name>.yaml")
    one.add_argument("--task", default="text", choices=sorted(TASK_SHAPES))
    one.add_argument("--size", default="lra_text", help="a preset of conf/speed/sizes.yaml")
    one.add_argument("--length", type=int, required=True)
    one.add_argument("--batch", type=int, default=32)
    one.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    one.add_argument("--steps", type=int, default=10, help="timed steps")
    one.add_argument("--device", default="auto")
    one.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    one.add_argument("--memory-limit-gb", type=float, default=None)
    one.add_argument("--no-flops", dest="count_flops", action="store_false")
    one.add_argument("--inject-allocation-gb", type=float, default=0.0, help=argparse.SUPPRESS)
    one.set_defaults(handler=measure)
    peak = modes.add_parser("probe", help="describe the device and measure its peak FLOP/s")
    peak.add_argument("--device", default="auto")
    peak.add_argument("--threads", type=int, default=None)
    peak.add_argument("--matmul-size", type=int, default=None, help="0 skips the peak")
    peak.set_defaults(handler=probe)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "probe" and args.matmul_size is None:
        args.matmul_size = 8192 if choose_device(args.device).type == "cuda" else 2048
    result = args.handler(args)
    # The last line of stdout is the result; anything a model prints comes before it.
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
