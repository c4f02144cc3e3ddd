"""Training checkpoints: everything a run needs to go on bit for bit where it stopped, written so
that no crash leaves half of one, read so that a damaged one is named, set aside and replaced by
the last good state (or step 0).

A run directory holds

    last.pt      the latest training state (below), written every `checkpoint_every` steps, at
                 every evaluation, and when the scheduler signals the job (SIGTERM, SIGUSR1)
    previous.pt  the state before it: what a damaged last.pt falls back to
    best.pt      the best-validation weights so far, for whoever wants them; the trainer never
                 reads it back (the state holds its own copy of the best weights)

A state is a dict of tensors and plain values, loaded with `torch.load(weights_only=True)` (no
pickled code runs): the model, optimizer and scheduler states, the best weights, the progress
(`Progress`) and the state of every random generator the run draws from (`capture_rng`).
Each file is written to a temporary name, flushed to the disk (fsync) and renamed into place.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks.files import fsync_path, replaced_atomically

FORMAT = 1  # bump when the content of a state changes; an older state is then not resumed
LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"
STATE_KEYS = ("format", "model", "optimizer", "scheduler", "best_model", "progress", "rng")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from; the message names it and says why."""


@dataclass
class Progress:
    """Where training stands, saved in every state.

    wall_seconds: wall time of every process of this run up to this state (so that a resumed
    run's record counts the time of its earlier processes too); resumes: one entry per time a
    process took over from an earlier one ({from_step, at, checkpoint, set_aside}).
    """

    step: int = 0
    best_step: int | None = None
    best_val: float | None = None
    last_loss: float | None = None
    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    resumes: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: object) -> Progress:
        if not isinstance(data, dict):
            raise CheckpointError(f"progress is a {type(data).__name__}, not a dict")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise CheckpointError(f"progress has fields {sorted(data)}, expected {sorted(names)}")
        progress = cls(**data)
        if not isinstance(progress.step, int) or progress.step < 0:
            raise CheckpointError(f"progress.step is {progress.step!r}")
        return progress


# --- random generators -------------------------------------------------------------------------


def capture_rng() -> dict:
    """The state of every generator a run draws from: torch's CPU generator (dropout, random
    features), each CUDA device's, numpy's and Python's global ones. The training batches need
    none: they are a pure function of (seed, step) (lra_bench/batches.py). Plain values and
    tensors only, so that the state loads with weights_only=True."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Puts every generator back as `capture_rng` found it."""
    torch.set_rng_state(state["torch"].cpu())
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].cpu().numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if state["cuda"] and torch.cuda.is_available():
        # The same command sees the same devices; where it does not, the devices both have.
        for index, generator in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(generator.cpu(), index)


# --- files ---------------------------------------------------------------------------------------


def write_state(state: dict, run_dir: Path) -> None:
    """Writes `state` as last.pt, the former last.pt becoming previous.pt. Between the two
    renames only previous.pt exists, which `resume` falls back to."""
    run_dir = Path(run_dir)
    last, tmp = run_dir / LAST, run_dir / f".{LAST}.tmp-{os.getpid()}"
    try:
        torch.save(state, tmp)
        fsync_path(tmp)
        if last.exists():
            os.replace(last, run_dir / PREVIOUS)
        os.replace(tmp, last)
        fsync_path(run_dir)
    finally:
        tmp.unlink(missing_ok=True)


def write_best(weights: dict, step: int, run_dir: Path) -> None:
    """best.pt: {'model': weights, 'step': step}."""
    with replaced_atomically(Path(run_dir) / BEST, durable=True) as tmp:
        torch.save({"model": weights, "step": step}, tmp)


def read_state(path: Path, device: torch.device | str = "cpu") -> dict:
    """The state in `path`; CheckpointError naming the file when it is not a whole state of
    this format."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated zip, garbage bytes, a pickle of forbidden globals
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(error)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a training state")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training state (lacks {', '.join(missing)})")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']}, expected {FORMAT}")
    return state


def read_best(path: Path) -> dict:
    """The weights of a best.pt; CheckpointError naming the file when it does not load."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(error)})") from None
    if not isinstance(content, dict) or not isinstance(content.get("model"), dict):
        raise CheckpointError(f"{path}: not a weights file ({{'model': ..., 'step': ...}})")
    return content


def set_aside(path: Path) -> Path:
    """Renames a damaged file to `<name>.damaged-<time>`: never read again, kept to look at."""
    path = Path(path)
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{counter}")
        counter += 1
    os.replace(path, target)
    return target


def remove_leftovers(run_dir: Path) -> None:
    """Removes the temporary files of writes that a killed process never finished (the caller
    holds the run lock, so no live process is writing them)."""
    for leftover in Path(run_dir).glob(".*.tmp-*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


# --- saving and resuming a training run ----------------------------------------------------------


@dataclass
class Resumed:
    """What `Checkpoints.resume` found: the progress and best weights to go on from (a fresh
    Progress at step 0 when nothing usable was there), and what it said about it."""

    progress: Progress
    best_weights: dict | None
    messages: list[str]


class Checkpoints:
    """Saves and restores one run's training state (model, optimizer, scheduler, generators,
    progress, best weights) in `run_dir`."""

    def __init__(
        self,
        run_dir: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        device: torch.device,
        max_steps: int,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.device = device
        self.max_steps = max_steps

    def save(self, progress: Progress, best_weights: dict | None) -> None:
        write_state(
            {
                "format": FORMAT,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_model": best_weights,
                "progress": dataclasses.asdict(progress),
                "rng": capture_rng(),
            },
            self.run_dir,
        )

    def save_best(self, weights: dict, step: int) -> None:
        write_best(weights, step, self.run_dir)

    def resume(self) -> Resumed:
        """The newest state that loads (last.pt, else previous.pt) applied to the model,
        optimizer, scheduler and generators. A file that does not load, or whose content does
        not fit this run, is renamed aside and named in the messages; with none left, training
        starts from step 0 with everything as it was before the call."""
        remove_leftovers(self.run_dir)
        messages, set_aside_names = [], []
        candidates = [self.run_dir / name for name in (LAST, PREVIOUS)]
        if not any(path.exists() for path in candidates):
            return Resumed(Progress(), None, messages)
        initial = self._snapshot()
        for path in candidates:
            if not path.exists():
                continue
            try:
                progress, best_weights = self._apply(read_state(path, self.device))
            except Exception as error:  # damaged, or not this run's (a shape does not fit)
                self._apply_snapshot(initial)
                reason = str(error) if isinstance(error, CheckpointError) else _reason(error)
                moved = set_aside(path)
                set_aside_names.append(f"{path.name} -> {moved.name}")
                messages.append(
                    f"checkpoint {path} does not load ({reason.removeprefix(f'{path}: ')}); "
                    f"moved aside to {moved.name}"
                )
                continue
            messages += self._check_best_file(best_weights, progress)
            progress.resumes.append(
                {
                    "from_step": progress.step,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "checkpoint": path.name,
                    "set_aside": set_aside_names,
                }
            )
            messages.append(f"resuming from step {progress.step} of {self.max_steps} ({path.name})")
            return Resumed(progress, best_weights, messages)
        progress = Progress()
        progress.resumes.append(
            {
                "from_step": 0,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "checkpoint": None,
                "set_aside": set_aside_names,
            }
        )
        messages.append("no checkpoint of this run loads: starting from step 0")
        return Resumed(progress, None, messages)

    def _apply(self, state: dict) -> tuple[Progress, dict | None]:
        progress = Progress.from_dict(state["progress"])
        if progress.step > self.max_steps:
            raise CheckpointError(f"step {progress.step} is past max_steps {self.max_steps}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        best = state["best_model"]
        if best is not None:
            best = {name: tensor.cpu() for name, tensor in best.items()}
        return progress, best

    def _check_best_file(self, best_weights: dict | None, progress: Progress) -> list[str]:
        """best.pt must hold the state's best weights; a damaged one is set aside and rewritten
        from the state (which holds its own copy)."""
        path = self.run_dir / BEST
        if best_weights is None or not path.exists():
            return []
        try:
            read_best(path)
            return []
        except CheckpointError as error:
            moved = set_aside(path)
            self.save_best(best_weights, progress.best_step)
            return [f"{error}; moved aside to {moved.name} and rewritten from the checkpoint"]

    def _snapshot(self) -> dict:
        return copy.deepcopy(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng(),
            }
        )

    def _apply_snapshot(self, snapshot: dict) -> None:
        self.model.load_state_dict(snapshot["model"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        self.scheduler.load_state_dict(snapshot["scheduler"])
        restore_rng(snapshot["rng"])


def copy_weights(model: nn.Module) -> dict:
    """A CPU copy of the model's weights (the best so far, kept in memory and in each state)."""
    return {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()
    }
