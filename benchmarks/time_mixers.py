"""Forward + backward time of zoo mixers, built from their Hydra configs (conf/model/<name>.yaml),
for the fast form and, with --reference, the plain step-by-step `reference` form.

    python benchmarks/time_mixers.py --models s4,s4d --lengths 1024,4096 --batch 8 --width 128 \
        [--reference] [--timeout 60] [--repeats 3] [--override model.backbone.mixer.scan=fft] \
        [--kernels chunked]

--kernels sets the ops' backend as a run's `kernels.backend` does (models/ops/dispatch.py; default
auto); the ops' backends that ran are printed after the table.

Each measurement runs in its own process: one warm-up, then the median of --repeats runs (one
run when the warm-up alone took over 5 s). A run that exceeds --timeout seconds is stopped and
reported as "> timeout s". The loss is sum(y^2) over a random (batch, length, width) input with
no padding.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LONG_WARMUP_S = 5.0  # beyond this, one timed run is enough (and repeats would take minutes)


def build_mixer(model: str, width: int, length: int, overrides: list[str]):
    """The mixer of conf/model/<model>.yaml at width `width`, with max_length = length."""
    from lra_bench.compose import build_mixer as build
    from lra_bench.compose import compose

    return build(compose([f"model={model}", *overrides]), width, length)


def _measure(
    connection, model, width, length, batch, form, repeats, threads, overrides, kernels
) -> None:
    """Child process: sends ('ready',) once built, ('warmup' | 'run', seconds) after each pass,
    then ('done', {op: backend that ran})."""
    import torch

    from models.ops import configure, report

    configure(backend=kernels)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    mixer = build_mixer(model, width, length, overrides)
    if form == "reference" and not hasattr(mixer, "reference"):
        connection.send(("missing",))
        return
    run = mixer if form == "fast" else mixer.reference
    x = torch.randn(batch, length, width, requires_grad=True)
    mask = torch.ones(batch, length, dtype=torch.bool)

    def one_pass() -> float:
        x.grad = None
        mixer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        run(x, mask).square().sum().backward()
        return time.perf_counter() - start

    connection.send(("ready",))
    warmup = one_pass()
    connection.send(("warmup", warmup))
    for _ in range(1 if warmup > LONG_WARMUP_S else repeats):
        connection.send(("run", one_pass()))
    connection.send(("done", report()))


def time_mixer(
    model, width, length, batch, form, repeats, threads, timeout, overrides, kernels="auto"
) -> dict:
    """{'seconds': median or None, 'runs': n, 'status': 'ok' | 'timeout' | 'missing' | 'error',
    'kernels': {op: backend that ran}}."""
    context = mp.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (sender, model, width, length, batch, form, repeats, threads, overrides, kernels)
    process = context.Process(target=_measure, args=args, daemon=True)
    process.start()
    runs: list[float] = []
    ran: dict[str, str] = {}
    try:
        status = _collect(receiver, process, runs, timeout, ran)
    finally:  # also when interrupted: never leave a measuring process behind
        if process.is_alive():
            process.kill()
        process.join()
    seconds = statistics.median(runs) if runs and status == "ok" else None
    return {"seconds": seconds, "runs": len(runs), "status": status, "kernels": ran}


def _collect(receiver, process, runs: list[float], timeout: float, ran: dict) -> str:
    """Reads the child's messages into `runs` (and the ops' backends into `ran`); returns the
    status."""
    status, ready = "error", False
    while True:
        # Spawning, importing and building take a while before the first pass; each pass after
        # that has `timeout` seconds.
        if not receiver.poll(timeout if ready else max(timeout, 120.0)):
            status = "timeout" if process.is_alive() else "error"
            break
        message = receiver.recv()
        ready = True
        if message[0] == "run":
            runs.append(message[1])
        elif message[0] in ("done", "missing"):
            status = "ok" if message[0] == "done" else "missing"
            ran.update(message[1] if message[0] == "done" else {})
            break
    return status


def describe(result: dict, timeout: float) -> str:
    if result["status"] == "timeout":
        return f"> {timeout:g} s"
    if result["status"] == "missing":
        return "n/a"
    if result["seconds"] is None:
        return "error"
    return f"{result['seconds']:.3f}" + (" (1 run)" if result["runs"] == 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="comma-separated conf/model names")
    parser.add_argument("--lengths", default="1024,4096", help="comma-separated lengths")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--reference", action="store_true", help="also time mixer.reference")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    # On a machine shared with other jobs, --threads 1 avoids OpenMP threads waiting on each
    # other at every operation (measured here: 30 ms per small op with 2 threads on 2 busy cores).
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--override", action="append", default=[], help="Hydra override")
    parser.add_argument("--kernels", default="auto", help="ops' backend (kernels.backend)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in time_mixer

    import torch

    models = [m for m in args.models.split(",") if m]
    lengths = [int(n) for n in args.lengths.split(",") if n]
    forms = ["fast", "reference"] if args.reference else ["fast"]
    print(
        f"# forward+backward seconds, median of {args.repeats} after a warm-up; batch "
        f"{args.batch}, width {args.width}; torch {torch.__version__}, "
        f"{args.threads or torch.get_num_threads()} threads, {platform.processor() or 'cpu'}"
    )
    header = f"{'model':<10} {'length':>7}" + "".join(f" {f:>16}" for f in forms)
    print(header)
    results = []
    for model in models:
        for length in lengths:
            row = f"{model:<10} {length:>7}"
            for form in forms:
                result = time_mixer(
                    model,
                    args.width,
                    length,
                    args.batch,
                    form,
                    args.repeats,
                    args.threads,
                    args.timeout,
                    args.override,
                    args.kernels,
                )
                results.append({"model": model, "length": length, "form": form, **result})
                row += f" {describe(result, args.timeout):>16}"
            print(row, flush=True)
    ran = sorted({f"{op}: {label}" for r in results for op, label in r["kernels"].items()})
    if ran:
        print("# ops ran: " + "; ".join(ran))
    if args.json:
        meta = {"batch": args.batch, "width": args.width, "torch": torch.__version__}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
