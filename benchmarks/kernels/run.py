"""`make kernels-bench`: forward and forward + backward time, TFLOP/s and peak memory of every
backend of every op of models/ops (iterated from the registry, so a backend registered later is
measured too), and of the strongest outside implementation importable here (peers.py), at
realistic LRA shapes (cases.py) and lengths 1K-16K.

    python benchmarks/kernels/run.py [--ops all] [--backends all] [--lengths 1024,2048]
        [--device auto] [--out results/kernels/<tag>] [--note 'shared machine']
    python benchmarks/kernels/run.py --compare A/kernels.json B/kernels.json [--out C.md]

Writes OUT/kernels.json (a machine header, the settings, one row per op x backend x length) and
OUT/kernels.md (a table per op), after every op, so an interrupted run keeps what it measured.
Not measured, and said so: Triton backends on CPU (the interpreter's time means nothing), the
`reference` form beyond --reference-max-length, a backend's longer lengths once one call took
over --skip-after-seconds, backends unavailable here (with the reason), peers not installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks.kernels import cases, flops, machine, peers, report, timing  # noqa: E402
from models.ops import configure, registered_ops  # noqa: E402
from models.ops.dispatch import BackendUnavailable, triton_runs_here  # noqa: E402

CUDA_LENGTHS = [1024, 2048, 4096, 8192, 16384]
# On a 2-core CPU the whole default run takes about 10 minutes with these (README).
CPU_LENGTHS = [1024, 2048, 4096]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", default="all", help="comma-separated op names, or all")
    parser.add_argument("--backends", default="all", help="comma-separated backend names, or all")
    parser.add_argument("--no-peers", action="store_true", help="skip the outside implementations")
    parser.add_argument(
        "--lengths", help=f"comma-separated (CUDA {CUDA_LENGTHS}, CPU {CPU_LENGTHS})"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--dtype",
        default="case",
        help="case (float32; bfloat16 for attention on CUDA) | float32 | bfloat16",
    )
    parser.add_argument("--warmup", type=int, help="untimed calls first (CUDA 3, CPU 1)")
    parser.add_argument("--repeats", type=int, help="timed calls, median taken (CUDA 10, CPU 3)")
    parser.add_argument(
        "--slow-seconds", type=float, default=5.0, help="one timed call beyond this"
    )
    parser.add_argument(
        "--skip-after-seconds",
        type=float,
        help="a backend whose forward + backward took longer skips the longer lengths (CUDA 30, CPU 15)",
    )
    parser.add_argument("--reference-max-length", type=int, default=1024)
    parser.add_argument(
        "--budget-seconds",
        type=float,
        help="start no measurement after this many seconds (the rest is listed as skipped)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default torch's)")
    parser.add_argument("--out", type=Path, help="output folder (default results/kernels/<tag>)")
    parser.add_argument("--tag", help="machine tag for the default folder (e.g. cpu-2core)")
    parser.add_argument("--note", default="", help="a line for the report's header")
    parser.add_argument(
        "--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two runs"
    )
    return parser.parse_args(argv)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def is_triton(backend) -> bool:
    return backend.name == "triton" or backend.available is triton_runs_here


def plain_form(op, device: torch.device) -> str | None:
    """The op's first plain PyTorch form in its order for this device (the ratios' base when no
    peer ran)."""
    order = [*op.auto.get(device.type, op.auto.get("cpu", ())), *op.backends]
    plain = [n for n in order if n != "reference" and not op.backends[n].compiled]
    return plain[0] if plain else None


class Runner:
    def __init__(self, settings: argparse.Namespace, device: torch.device) -> None:
        self.s = settings
        self.device = device
        self.too_slow: dict[tuple[str, str], str] = {}  # (op, backend) -> why longer lengths skip
        self.started = time.perf_counter()

    def skip_reason(self, op_name: str, name: str, backend, length: int) -> str | None:
        budget = self.s.budget_seconds
        if budget is not None and time.perf_counter() - self.started > budget:
            return f"the run's time budget of {budget:g} s (--budget-seconds) was spent"
        if backend is not None and is_triton(backend) and self.device.type == "cpu":
            return "Triton on CPU runs in its interpreter, whose time means nothing"
        if name == "reference":
            slow = cases.CASES[op_name].slow_reference_cpu
            if slow is not None and self.device.type == "cpu":
                return slow
            if length > self.s.reference_max_length:
                return f"reference beyond --reference-max-length {self.s.reference_max_length}"
        return self.too_slow.get((op_name, name))

    def measure(self, op_name, name, kind, prepare, length, inputs) -> dict:
        """One row: time forward and forward + backward of prepare() -> (forward, leaves)."""
        row = {"op": op_name, "name": name, "kind": kind, "length": length, "status": "ok"}
        try:
            forward, leaves = prepare()
            full = timing.forward_backward(forward, leaves)
            s = self.s
            fwd = timing.measure(forward, self.device, s.warmup, s.repeats, s.slow_seconds)
            both = timing.measure(full, self.device, s.warmup, s.repeats, s.slow_seconds)
        except torch.OutOfMemoryError as error:
            return {**row, "status": "oom", "reason": str(error).split("\n")[0][:200]}
        except (BackendUnavailable, peers.PeerUnavailable) as error:
            return {**row, "status": "unavailable", "reason": str(error)}
        except Exception as error:  # a broken backend is a result to report, not a crash
            return {**row, "status": "error", "reason": f"{type(error).__name__}: {error}"[:300]}
        work = inputs.flops
        row.update(
            fwd_ms=fwd.median_s * 1e3,
            fwd_min_ms=fwd.min_s * 1e3,
            fwd_runs=fwd.runs,
            fwd_bwd_ms=both.median_s * 1e3,
            fwd_bwd_min_ms=both.min_s * 1e3,
            fwd_bwd_runs=both.runs,
            flops_fwd=work,
            tflops_fwd=None if work is None else work / fwd.median_s / 1e12,
            tflops_fwd_bwd=None
            if work is None
            else flops.forward_backward(work) / both.median_s / 1e12,
        )
        if both.median_s > self.s.skip_after_seconds:
            self.too_slow[(op_name, name)] = (
                f"forward + backward took {both.median_s:.0f} s at length {length} "
                f"(> --skip-after-seconds {self.s.skip_after_seconds:g})"
            )
        if not self.s.no_memory and both.median_s <= self.s.slow_seconds:
            try:
                row["peak_mib"] = timing.peak_memory_bytes(full, self.device) / 2**20
            except torch.OutOfMemoryError:
                row["peak_mib"] = None
        return row

    def run_op(self, op_name: str, op) -> tuple[dict, list[dict]]:
        s = self.s
        info = {
            "plain_form": plain_form(op, self.device),
            "peers": {},
            "backends": list(op.backends),
        }
        rows: list[dict] = []
        if op_name not in cases.CASES:
            info["missing_case"] = True
            return info, rows
        names = [n for n in op.backends if s.backends == "all" or n in s.backends.split(",")]
        op_peers = [] if s.no_peers else peers.PEERS.get(op_name, [])
        for peer in op_peers:
            try:
                peer.check()
                info["peers"][peer.name] = "installed"
            except peers.PeerUnavailable as error:
                info["peers"][peer.name] = str(error)
        for length in s.lengths:
            rows += self.run_length(op_name, op, names, op_peers, length, info)
            self.release()
        return info, rows

    def run_length(self, op_name, op, names, op_peers, length, info) -> list[dict]:
        """The rows of every chosen backend and installed peer of one op at one length."""
        inputs = cases.build(op_name, length, self.device, self.s.dtype)
        info.update(shape=inputs.shape, dtype=cases.dtype_of(inputs))
        info["flops_formula"] = " ".join(getattr(flops, op_name).__doc__.split())
        tensors = [a for a in inputs.args if isinstance(a, torch.Tensor)]
        leaves = [t for t in tensors if t.requires_grad]
        rows = []
        for name in names:
            backend = op.backends[name]
            reason = self.skip_reason(op_name, name, backend, length)
            status = "skipped"
            if reason is None:
                reason, status = backend.available(tensors), "unavailable"
            if reason is not None:
                rows.append(self._not_run(op_name, name, "backend", length, status, reason))
                continue

            def prepare(backend=backend):
                function = backend.load()
                return (lambda: function(*inputs.args, **inputs.options)), leaves

            rows.append(self.measure(op_name, name, "backend", prepare, length, inputs))
            self.say(rows[-1])
        for peer in op_peers:
            if info["peers"][peer.name] != "installed":
                continue
            reason = self.skip_reason(op_name, peer.name, None, length)
            if reason is not None:
                rows.append(self._not_run(op_name, peer.name, "peer", length, "skipped", reason))
                continue

            def prepare(peer=peer):
                return peer.prepare(inputs, self.device)

            rows.append(self.measure(op_name, peer.name, "peer", prepare, length, inputs))
            self.say(rows[-1])
        return rows

    @staticmethod
    def _not_run(op_name, name, kind, length, status, reason) -> dict:
        return {
            "op": op_name,
            "name": name,
            "kind": kind,
            "length": length,
            "status": status,
            "reason": reason,
        }

    def release(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @staticmethod
    def say(row: dict) -> None:
        if row["status"] == "ok":
            text = f"fwd {row['fwd_ms']:.3f} ms, fwd+bwd {row['fwd_bwd_ms']:.3f} ms"
        else:
            text = f"{row['status']}: {row.get('reason', '')}"
        print(f"  {row['op']:<24} {row['name']:<12} L={row['length']:<6} {text}", flush=True)


def write(out: Path, document: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("kernels.json", json.dumps(document, indent=1) + "\n"),
        ("kernels.md", report.markdown(document)),
    ):
        partial = out / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, out / name)


def main(argv: list[str] | None = None) -> None:
    s = parse(argv)
    if s.compare:
        text = report.compare(*(json.loads(p.read_text()) for p in s.compare), names=s.compare)
        if s.out:
            s.out.write_text(text)
        print(text, end="")
        return
    if s.threads:
        torch.set_num_threads(s.threads)
    device = choose_device(s.device)
    cuda = device.type == "cuda"
    s.lengths = (
        [int(n) for n in s.lengths.split(",")]
        if s.lengths
        else (CUDA_LENGTHS if cuda else CPU_LENGTHS)
    )
    s.warmup = s.warmup if s.warmup is not None else (3 if cuda else 1)
    s.repeats = s.repeats if s.repeats is not None else (10 if cuda else 3)
    if s.skip_after_seconds is None:
        s.skip_after_seconds = 30.0 if cuda else 15.0
    s.dtype = {"case": None, "float32": torch.float32, "bfloat16": torch.bfloat16}[s.dtype]
    out = s.out or REPO / "results" / "kernels" / (s.tag or machine.default_tag(device))
    configure(backend="auto", fallback="error")  # a backend asked for by name runs, or fails
    ops = registered_ops()
    chosen = sorted(ops) if s.ops == "all" else s.ops.split(",")
    document = {
        "machine": {**machine.describe(device), "note": s.note},
        "settings": {
            "lengths": s.lengths,
            "dtype": "case" if s.dtype is None else str(s.dtype).replace("torch.", ""),
            "warmup": s.warmup,
            "repeats": s.repeats,
            "slow_seconds": s.slow_seconds,
            "skip_after_seconds": s.skip_after_seconds,
            "reference_max_length": s.reference_max_length,
            "memory_method": None if s.no_memory else timing.MEMORY_METHOD[device.type],
            "backward_factor": flops.BACKWARD_FACTOR,
        },
        "ops": {},
        "rows": [],
    }
    runner = Runner(s, device)
    started = time.perf_counter()
    print(f"kernels-bench on {document['machine']['device_name']} -> {out}", flush=True)
    for op_name in chosen:
        if op_name not in ops:
            raise SystemExit(f"no op {op_name!r}; ops are {sorted(ops)}")
        info, rows = runner.run_op(op_name, ops[op_name])
        document["ops"][op_name] = info
        document["rows"].extend(rows)
        document["machine"]["wall_s"] = round(time.perf_counter() - started, 1)
        if hasattr(os, "getloadavg"):
            document["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        write(out, document)
    print(f"wrote {out}/kernels.json and kernels.md in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
