"""Forward + backward time and peak memory of the selective scan's CPU forms: `reference` (one
step at a time), `chunked` (PyTorch, recomputed chunks) and `cpu` (the compiled kernel).

    python benchmarks/selective_scan_cpu.py [--shapes 8x4096x256x16,4x1024x256x16]
        [--forms reference,chunked,cpu] [--threads 2] [--repeats 3] [--dtype float32]

Shapes are batch x length x channels x states. Each (shape, form) runs in its own process:
- memory first, on the process's first pass (the kernel is built and loaded before): the peak
  resident set size during forward + backward minus the resident size just before it (Linux's
  VmHWM, reset through /proc/self/clear_refs). A first pass in a fresh process is measured
  because freed memory that the allocator keeps would hide a later pass's peak. tracemalloc
  would not see tensor memory at all.
- then time: the median of --repeats passes after that first one.
The loss is sum(y * g) + sum(h_last * g') for fixed random g, g'.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _measure(connection, shape, form, dtype_name, threads, repeats, chunk_size) -> None:
    """Child process: sends {'peak_mib', 'seconds', 'forward_seconds'} or {'error'}."""
    import torch
    import torch.nn.functional as F

    from models.ops.selective_scan import selective_scan

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    batch, length, channels, states = shape
    try:
        if form == "cpu":
            from models.ops.selective_scan.cpu import kernel

            kernel()  # built and loaded before the baseline
        u = torch.randn(batch, length, channels, dtype=dtype, requires_grad=True)
        delta = F.softplus(torch.randn(batch, length, channels, dtype=dtype) - 3)
        delta.requires_grad_()
        A = (-torch.arange(1, states + 1, dtype=dtype).repeat(channels, 1)).requires_grad_()
        B = torch.randn(batch, length, states, dtype=dtype, requires_grad=True)
        C = torch.randn(batch, length, states, dtype=dtype, requires_grad=True)
        D = torch.ones(channels, dtype=dtype, requires_grad=True)
        h0 = torch.randn(batch, channels, states, dtype=dtype, requires_grad=True)
        grad_y = torch.randn(batch, length, channels, dtype=dtype)
        grad_h = torch.randn(batch, channels, states, dtype=dtype)
        leaves = (u, delta, A, B, C, D, h0)

        def forward():
            return selective_scan(u, delta, A, B, C, D, h0, chunk_size=chunk_size, backend=form)

        def one_pass() -> float:
            for leaf in leaves:
                leaf.grad = None
            start = time.perf_counter()
            y, h = forward()
            torch.autograd.backward((y, h), (grad_y, grad_h))
            return time.perf_counter() - start

        baseline = _status_kib("VmRSS")
        exact = _reset_peak()
        one_pass()
        peak_mib = (_status_kib("VmHWM") - baseline) / 1024 if exact else None
        seconds = statistics.median(one_pass() for _ in range(repeats))
        forward_times = []
        for _ in range(repeats):
            with torch.no_grad():
                start = time.perf_counter()
                forward()
                forward_times.append(time.perf_counter() - start)
        connection.send(
            {
                "peak_mib": peak_mib,
                "seconds": seconds,
                "forward_seconds": statistics.median(forward_times),
            }
        )
    except Exception as error:  # reported in the table, the other forms still run
        connection.send({"error": f"{type(error).__name__}: {error}"[:120]})


def measure(shape, form, dtype, threads, repeats, chunk_size, timeout) -> dict:
    context = mp.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_measure,
        args=(sender, shape, form, dtype, threads, repeats, chunk_size),
        daemon=True,
    )
    process.start()
    try:
        if receiver.poll(timeout):
            return receiver.recv()
        return {"error": f"> {timeout:g} s"}
    finally:
        if process.is_alive():
            process.kill()
        process.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="8x4096x256x16,4x1024x256x16,64x256x128x16")
    parser.add_argument("--forms", default="reference,chunked,cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    args = parser.parse_args(argv)

    import torch

    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",") if s]
    forms = [f for f in args.forms.split(",") if f]
    print(
        f"# selective scan, {args.dtype}, chunk {args.chunk_size}, {args.threads} threads, "
        f"torch {torch.__version__}, {platform.processor() or 'cpu'}; seconds: median of "
        f"{args.repeats}; peak: RSS high-water above the inputs, first pass"
    )
    print(
        f"{'b x l x d x n':<18} {'form':<10} {'fwd+bwd s':>10} {'fwd s':>8} "
        f"{'peak MiB':>9} {'vs chunked':>11} {'ns/update':>10}"
    )
    for shape in shapes:
        results = {
            form: measure(
                shape, form, args.dtype, args.threads, args.repeats, args.chunk_size, args.timeout
            )
            for form in forms
        }
        updates = shape[0] * shape[1] * shape[2] * shape[3]
        base = results.get("chunked", {}).get("seconds")
        for form, result in results.items():
            name = "x".join(map(str, shape))
            if "error" in result:
                print(f"{name:<18} {form:<10} {result['error']}")
                continue
            peak = "n/a" if result["peak_mib"] is None else f"{result['peak_mib']:.0f}"
            ratio = f"{base / result['seconds']:.2f}x" if base else "-"
            print(
                f"{name:<18} {form:<10} {result['seconds']:>10.3f} "
                f"{result['forward_seconds']:>8.3f} {peak:>9} {ratio:>11} "
                f"{1e9 * result['seconds'] / updates:>10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
