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

import fcntl
import hashlib
import json
import os
from pathlib import Path

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


def run_dir_for(cfg: DictConfig) -> Path:
    """results_dir/runs/<task>/<model>/<profile>/seed<seed>-<hash>."""
    return (
        Path(cfg.results_dir)
        / "runs"
        / str(cfg.task.name)
        / str(cfg.model.name)
        / str(cfg.profile.name)
        / f"seed{cfg.seed}-{config_hash(cfg)}"
    )


class RunLockedError(RuntimeError):
    pass


class RunLock:
    """An exclusive `flock` on `<run_dir>/run.lock`. The kernel releases it when the process
    dies, so a crashed run never leaves a stale lock behind. Non-blocking (a second process is
    refused) unless `wait`: then the second process waits for the first to finish (a pretraining
    run that the jobs of a sweep share, lra_bench/run.py `pretrain_first`)."""

    def __init__(self, run_dir: Path, wait: bool = False) -> None:
        self.path = Path(run_dir) / "run.lock"
        self.wait = wait
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            if self.wait:
                print(f"waiting for {self.path.parent} (run by pid {holder})", flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
                return self._hold(handle)
            handle.close()
            raise RunLockedError(
                f"{self.path.parent} is being run by another process (pid {holder}); "
                "wait for it or stop it"
            ) from None
        return self._hold(handle)

    def _hold(self, handle) -> RunLock:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
