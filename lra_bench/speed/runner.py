"""Running the speed protocol (settings.py): byte-level text task shape, one common model size,
training steps per second and peak memory at lengths 1K..4K, here extended to 64K for the models
that fit.

Each (model, length) runs in a fresh process (worker.py). An out-of-memory, a
crash or a timeout is recorded as such and the run goes on; longer lengths of a model that ran
out of memory or time are recorded as skipped. Rows go to DIR/speed_memory.csv (comment lines
naming the machine first, so `pandas.read_csv(path, comment="#")` reads it), rewritten after
every measurement. A run's CSV and report hold its own rows only: an earlier run's CSV in DIR is
kept as speed_memory.previous.csv. With `merge` (`lra-bench speed --merge`) the earlier rows
stay in the CSV instead, unless measured again.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from lra_bench import REPO_ROOT
from lra_bench.speed.flops import mfu
from lra_bench.speed.settings import GB, SpeedSettings, load_size, task_shape
from tasks.files import replaced_atomically

CSV_NAME = "speed_memory.csv"
PREVIOUS_CSV_NAME = "speed_memory.previous.csv"  # an earlier run's rows, when not merged
BASELINE = "transformer"  # speed-up and memory ratios are against this model
# A row is one measurement of one model under these settings; a new one replaces an old one.
ROW_KEY = ["model", "task", "size", "batch", "length", "device_name", "precision"]
# Rows compared with one another (ratios against the baseline) share these.
COMPARE_KEY = ["task", "size", "batch", "length", "device_name", "precision"]
COLUMNS = [
    *ROW_KEY[:5],
    "status",
    "steps_per_sec",
    "steps_per_sec_min",
    "steps_per_sec_max",
    "speedup_vs_transformer",
    "peak_mem_gb",
    "mem_ratio_vs_transformer",
    "params",
    "flops_per_step",
    "flops_uncounted",
    "achieved_tflops",
    "peak_tflops",
    "mfu",
    "d_model",
    "n_layers",
    "d_ff",
    "n_heads",
    "warmup",
    "steps",
    "device",
    "device_name",
    "precision",
    "threads",
    "memory_method",
    "worker_pid",
    "wall_s",
    "torch",
    "git_commit",
    "measured_at",
    "error",
]
FAILED = ("oom", "timeout")  # statuses after which longer lengths of a model are skipped


def _worker_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(arguments: list[str], timeout: float) -> tuple[dict | None, str, float]:
    """Runs `python -m lra_bench.speed.worker ARGUMENTS` in a fresh process (its own process
    group, so a timeout kills everything it started). Returns (its JSON result or None, why
    there is none, wall seconds)."""
    command = [sys.executable, "-m", "lra_bench.speed.worker", *arguments]
    tic = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_worker_env(),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, f"timeout: no result within {timeout:g} s", time.perf_counter() - tic
    wall = time.perf_counter() - tic
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line), "", wall
            except json.JSONDecodeError:
                break
    return None, exit_reason(process.returncode, stderr), wall


def exit_reason(returncode: int, stderr: str) -> str:
    """Why a worker that printed no result ended. A worker killed by SIGKILL that we did not
    kill was, on Linux, almost always killed by the kernel's out-of-memory killer."""
    if returncode == -signal.SIGKILL:
        return "oom: killed by SIGKILL (most likely the kernel's out-of-memory killer)"
    if returncode < 0:
        return f"failed: killed by signal {signal.Signals(-returncode).name}"
    last = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"failed: exit status {returncode}: {last[-1] if last else 'no message'}"


def probe_device(settings: SpeedSettings) -> dict:
    """Device description and peak matmul FLOP/s, from a worker (the parent never initialises
    CUDA, so it holds no device memory while the workers measure)."""
    result, reason, _ = run_worker(
        ["probe", settings.to_json()], timeout=max(120.0, settings.timeout)
    )
    if result is None:
        raise RuntimeError(f"could not probe the device: {reason}")
    return result


def _clean(text) -> str:
    """One line without '#', which would start a comment for read_csv(comment='#')."""
    return " ".join(str(text).replace("#", "No.").split())[:300]


def base_row(model: str, length: int, settings: SpeedSettings, machine: dict) -> dict:
    """What every row of `model` at `length` says, measured or not."""
    size = load_size(settings.size)
    return {
        "model": model,
        "task": settings.task,
        "size": settings.size,
        "batch": settings.batch,
        "length": length,
        **{k: size[k] for k in ("d_model", "n_layers", "d_ff")},
        "warmup": settings.warmup,
        "steps": settings.steps,
        "git_commit": machine.get("git_commit"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{k: machine.get(k) for k in ("device", "device_name", "precision", "threads", "torch")},
    }


def skipped_row(
    model: str, length: int, settings: SpeedSettings, machine: dict, stopped: tuple[int, str]
) -> dict:
    """The row of a length not measured because a shorter one ran out of memory or time."""
    what = "memory" if stopped[1] == "oom" else "time"
    return {
        **base_row(model, length, settings, machine),
        "status": "skipped",
        "error": f"not run: length {stopped[0]} already ran out of {what}",
    }


def measure(model: str, length: int, settings: SpeedSettings, machine: dict) -> dict:
    """One CSV row: `model` at `length`, measured in a fresh process."""
    arguments = [
        "measure",
        settings.to_json(),
        f"--model={model}",
        f"--length={length}",
        *settings.worker_args,
    ]
    result, reason, wall = run_worker(arguments, settings.timeout)
    row = {**base_row(model, length, settings, machine), "wall_s": round(wall, 2)}
    if machine.get("peak_flops"):
        row["peak_tflops"] = machine["peak_flops"] / 1e12
    if result is None:
        status, _, error = reason.partition(": ")
        row.update(status=status, error=_clean(error))
        return row
    row.update(
        status=result["status"],
        error=_clean(result["error"]) if result.get("error") else None,
        worker_pid=result["pid"],
        params=result.get("params"),
        n_heads=result.get("n_heads"),
        memory_method=result.get("memory_method"),
        **{k: result[k] for k in ("device", "device_name", "precision", "threads", "torch")},
    )
    if result.get("peak_mem_bytes") is not None:
        row["peak_mem_gb"] = result["peak_mem_bytes"] / GB
    if result.get("flops_per_step") is not None:
        row["flops_per_step"] = result["flops_per_step"]
        row["flops_uncounted"] = " ".join(result.get("flops_uncounted", [])) or None
    if result["status"] == "ok":
        rates = [1.0 / s for s in result["step_seconds"]]
        row.update(
            steps_per_sec=statistics.median(rates),
            steps_per_sec_min=min(rates),
            steps_per_sec_max=max(rates),
        )
        achieved, utilisation = mfu(
            row.get("flops_per_step"), row["steps_per_sec"], machine.get("peak_flops")
        )
        if achieved is not None:
            row["achieved_tflops"] = achieved / 1e12
            row["mfu"] = utilisation
    return row


def add_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """speedup_vs_transformer and mem_ratio_vs_transformer of every row against the baseline's
    ok row with the same COMPARE_KEY (empty where the baseline was not measured there)."""
    table = table.copy()
    for column in ("speedup_vs_transformer", "mem_ratio_vs_transformer"):
        table[column] = float("nan")
    base = table[(table.model == BASELINE) & (table.status == "ok")]
    base = base.set_index(COMPARE_KEY)[["steps_per_sec", "peak_mem_gb"]]
    for index, row in table.iterrows():
        key = tuple(row[k] for k in COMPARE_KEY)
        if row["status"] != "ok" or key not in base.index:
            continue
        reference = base.loc[key]
        if isinstance(reference, pd.DataFrame):  # duplicate baseline rows: keep the last
            reference = reference.iloc[-1]
        table.loc[index, "speedup_vs_transformer"] = row.steps_per_sec / reference.steps_per_sec
        if reference.peak_mem_gb > 0:
            table.loc[index, "mem_ratio_vs_transformer"] = row.peak_mem_gb / reference.peak_mem_gb
    return table


def read_speed_csv(path: Path) -> pd.DataFrame:
    """The rows of a speed_memory.csv (its comment header skipped)."""
    return pd.read_csv(path, comment="#")


def merge(previous: pd.DataFrame | None, rows: list[dict]) -> pd.DataFrame:
    """Earlier rows not measured again, then this run's rows; ratios recomputed over all."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    if previous is not None and not previous.empty and new.empty:
        new = previous.reindex(columns=COLUMNS)
    elif previous is not None and not previous.empty:
        previous = previous.reindex(columns=COLUMNS)
        measured = set(map(tuple, new[ROW_KEY].astype(str).values))
        keep = [tuple(r) not in measured for r in previous[ROW_KEY].astype(str).values]
        new = pd.concat([previous[keep], new], ignore_index=True) if any(keep) else new
    return add_ratios(new)[COLUMNS]


def header_lines(settings: SpeedSettings, machine: dict) -> list[str]:
    size = load_size(settings.size)
    vocab, classes = task_shape(settings.task)
    commit = machine.get("git_commit") or "unknown"
    if machine.get("git_dirty"):
        commit += " (uncommitted changes)"
    peak = (
        f"peak {machine['peak_flops'] / 1e12:.3g} TFLOP/s measured with a {machine['peak_matmul']}"
        if machine.get("peak_flops")
        else "peak FLOP/s not measured"
    )
    cuda = f", CUDA {machine['cuda']}" if machine.get("cuda") else ""
    return [
        "lra-bench speed: the LRA Table 2 protocol (training steps/s and peak memory vs length)",
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['threads']} torch threads)",
        f"device: {machine['device_name']} ({machine['device']}, {machine['precision']}); {peak}",
        f"torch {machine['torch']}{cuda}, python {machine['python']}, git {commit}",
        f"this run: task {settings.task} shape (vocab {vocab}, "
        f"{classes} classes, random tokens), batch {settings.batch}, "
        f"size {settings.size} (d_model {size['d_model']}, {size['n_layers']} layers, "
        f"d_ff {size['d_ff']}, {size['n_heads']} heads where the mixer has heads; other options "
        f"from conf/model/<name>.yaml), {settings.warmup} warm-up + {settings.steps} timed "
        f"steps (median, min, max), timeout {settings.timeout:g} s, memory limit "
        f"{'none' if settings.memory_limit_gb is None else f'{settings.memory_limit_gb:g} GB'}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
        "peak_mem_gb (10^9 bytes): CUDA = allocator peak of allocated tensors; CPU = resident-set "
        "high-water mark above a baseline taken after start-up, before the model is built",
        "flops_per_step: torch FlopCounterMode over forward + backward (matmuls, convolutions, "
        "attention); FFTs, scans, element-wise ops and Triton kernels are not counted, so "
        "flops_per_step, achieved_tflops and mfu are lower bounds (flops_uncounted names heavy "
        "ops seen without a formula)",
        "status: ok | oom | timeout | failed | skipped (a shorter length already ran out of "
        "memory or time); rows from earlier runs keep their own device, torch, git and date",
    ]


def write_speed_csv(table: pd.DataFrame, path: Path, header: list[str]) -> None:
    """Writes `table` after `# `-prefixed header lines, through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp, open(tmp, "w") as handle:
        handle.writelines(f"# {' '.join(line.replace('#', 'No.').split())}\n" for line in header)
        table.to_csv(handle, index=False, float_format="%.6g")


def _describe(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['status']}" + (f" ({row['error']})" if row.get("error") else "")
    text = (
        f"{row['steps_per_sec']:.3g} steps/s ({row['steps_per_sec_min']:.3g}-"
        f"{row['steps_per_sec_max']:.3g}), {row['peak_mem_gb']:.3g} GB"
    )
    if row.get("mfu") is not None:
        text += f", MFU >= {100 * row['mfu']:.2g}%"
    return text


def run_speed(
    settings: SpeedSettings, out_dir: Path, log=print, keep_earlier_rows: bool = False
) -> pd.DataFrame:
    """Measures every (model, length) of `settings`, writing out_dir/speed_memory.csv as it
    goes; returns the table. keep_earlier_rows (`--merge`): keep the rows of an earlier run in
    out_dir that this one does not measure again; otherwise the earlier CSV is moved to
    speed_memory.previous.csv and the table holds this run's rows only."""
    from lra_bench.environment import git_state

    out_dir = Path(out_dir)
    path = out_dir / CSV_NAME
    previous = None
    if path.exists() and keep_earlier_rows:
        previous = read_speed_csv(path)
    elif path.exists():
        os.replace(path, out_dir / PREVIOUS_CSV_NAME)
        log(
            f"the earlier run's rows are now in {out_dir / PREVIOUS_CSV_NAME} "
            "(--merge keeps them in the report)"
        )
    machine = probe_device(settings)
    git = git_state()
    machine.update(git_commit=git["commit"], git_dirty=git["dirty"])
    header = header_lines(settings, machine)
    log(header[2])
    rows: list[dict] = []
    table = previous
    progress = Progress(len(settings.models) * len(settings.lengths))
    log(
        f"{progress.total} measurements ({len(settings.models)} models x "
        f"{len(settings.lengths)} lengths), each in a fresh process"
    )
    for model in settings.models:
        stopped = None  # (length, status) that ends this model's run
        for length in settings.lengths:
            if stopped is not None:
                row = skipped_row(model, length, settings, machine, stopped)
                progress.skipped()
            else:
                tic = time.perf_counter()
                row = measure(model, length, settings, machine)
                progress.measured(time.perf_counter() - tic)
                if row["status"] in FAILED:
                    stopped = (length, row["status"])
            rows.append(row)
            log(f"{progress.line()} | {model} L={length}: {_describe(row)}")
            table = merge(previous, rows)
            write_speed_csv(table, path, header)
    return table


class Progress:
    """ "N of M" and the time left: the mean time of the measurements so far, times the ones
    still to come (a length skipped after an out-of-memory or a timeout takes none)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._measured = 0
        self._seconds = 0.0

    def measured(self, seconds: float) -> None:
        self.done += 1
        self._measured += 1
        self._seconds += seconds

    def skipped(self) -> None:
        self.done += 1

    def line(self) -> str:
        left = self.total - self.done
        if not left:
            return f"{self.done} of {self.total}"
        eta = left * self._seconds / self._measured if self._measured else None
        return f"{self.done} of {self.total}, ETA {_duration(eta)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
