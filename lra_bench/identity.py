"""What identifies a run, where its directory is, and the lock that keeps two processes of one
run apart.

A run is identified by its task, model, profile, seed and the hash of what defines the experiment:
the resolved config minus the keys that only say where or how verbosely to run
(NON_IDENTIFYING_KEYS), minus where the code lives (every `_target_` and `_partial_`: moving a
module must not orphan the runs made with it), minus settings added later at a value that
reproduces what ran before them (NEUTRAL_DEFAULTS: a value, or a test of the value, per
top-level key). The same command therefore finds its
earlier run (to skip or resume it), and two runs that differ in any setting never share a
directory, whenever they start.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

# Top-level config keys that do not change what is computed.
NON_IDENTIFYING_KEYS = (
    "results_dir",
    "data_root",
    "progress",
    "force",
    "device",
    "kernels",
    "wandb",
    "checkpoint_every",  # how often a resume state is written: never what is computed
    "logger",  # where metrics are written (metrics.csv, W&B), never what is computed
    "tuning",  # which study a trial belongs to: its result set, like results_dir
)


# Instantiation plumbing: which class or function builds a node, not what it computes.
CODE_LOCATION_KEYS = ("_target_", "_partial_")


def _no_pretraining(node) -> bool:
    """The `pretrain` node of a run from scratch: whatever budgets it lists, none is used."""
    return isinstance(node, dict) and node.get("objective") == "none"


# Top-level settings added after runs were recorded, at the value under which those runs ran:
# left out of the hash at that value, so the earlier runs keep their identity. An entry is the
# neutral value itself, or a function that says whether a value is neutral.
NEUTRAL_DEFAULTS: dict[str, object] = {
    # Self-pretraining (issue 14): a run without it is the run it always was.
    "pretrain": _no_pretraining,
}


def is_neutral(key: str, value) -> bool:
    """Whether top-level `key` at `value` is left out of the identity (NEUTRAL_DEFAULTS)."""
    if key not in NEUTRAL_DEFAULTS:
        return False
    neutral = NEUTRAL_DEFAULTS[key]
    return neutral(value) if callable(neutral) else value == neutral


def _without_code_locations(node):
    if isinstance(node, dict):
        return {
            k: _without_code_locations(v) for k, v in node.items() if k not in CODE_LOCATION_KEYS
        }
    if isinstance(node, list):
        return [_without_code_locations(v) for v in node]
    return node


def identifying_config(cfg: DictConfig | dict) -> dict:
    """What defines the experiment, as plain data (a composed config or a record's resolved
    config dict)."""
    container = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    return {
        k: _without_code_locations(v)
        for k, v in container.items()
        if k not in NON_IDENTIFYING_KEYS and not is_neutral(k, v)
    }


def config_hash(cfg: DictConfig | dict, include_seed: bool = True) -> str:
    """12 hex digits of sha256 over the canonical JSON of `identifying_config(cfg)`.

    Without the seed it names the variant: runs that differ only in their seed share it, and
    the leaderboard averages over seeds within a variant only.
    """
    config = identifying_config(cfg)
    if not include_seed:
        config.pop("seed", None)
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


TUNING_DIR = "tuning"


def result_set_dir(cfg: DictConfig) -> Path:
    """The result set a run belongs to (its records under runs/, its own leaderboard):
    results_dir, or results_dir/tuning/<study> for a tuning trial (`tuning=<study>`), so that
    trials never mix with the canonical runs of results_dir."""
    tuning = cfg.get("tuning")
    if tuning:
        return Path(cfg.results_dir) / TUNING_DIR / str(tuning)
    return Path(cfg.results_dir)


def run_dir_for(cfg: DictConfig) -> Path:
    """<result set>/runs/<task>/<model>/<profile>/seed<seed>-<hash> (see result_set_dir)."""
    return (
        result_set_dir(cfg)
        / "runs"
        / str(cfg.task.name)
        / str(cfg.model.name)
        / str(cfg.profile.name)
        / f"seed{cfg.seed}-{config_hash(cfg)}"
    )


class RunLockedError(RuntimeError):
    pass


class RunLock:
    """An exclusive lock on `<run_dir>/run.lock` (an flock, through `filelock`). The kernel
    releases it when the process dies, so a crashed run never leaves a stale lock behind. The
    holder writes its host and pid to `<run_dir>/run.owner`, which the refusal quotes.
    Non-blocking (a second holder is refused) unless `wait`: then the second waits for the first
    to finish (a pretraining run the jobs of a sweep share, lra_bench/run.py `pretrain_first`)."""

    def __init__(self, run_dir: Path, wait: bool = False) -> None:
        self.path = Path(run_dir) / "run.lock"
        self.owner = Path(run_dir) / "run.owner"
        self.wait = wait
        self._lock: FileLock | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # thread_local=False and no singleton: a second RunLock on the same run, even in this
        # process, is a second holder and is refused (or waits).
        lock = FileLock(self.path, timeout=0, thread_local=False, is_singleton=False)
        try:
            lock.acquire()
        except Timeout:
            try:
                holder = self.owner.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            if not self.wait:
                raise RunLockedError(
                    f"{self.path.parent} is being run by another process ({holder}); "
                    "wait for it or stop it"
                ) from None
            print(f"waiting for {self.path.parent} ({holder})", flush=True)
            lock.acquire(timeout=-1)
        self.owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._lock = lock
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
