"""What identifies a run, where its directory is, and the lock that keeps two processes of one
run apart.

A run is identified by its task, model, profile, seed and the hash of what defines the experiment:
the resolved config minus the keys that only say where or how verbosely to run
(NON_IDENTIFYING_KEYS), minus where the code lives (every `_target_` and `_partial_`: moving a
module must not orphan the runs made with it), minus settings added later at the value that
reproduces what ran before them (NEUTRAL_DEFAULTS). The same command therefore finds its
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
    "logger",  # where metrics are written (metrics.csv, W&B), never what is computed
    "tuning",  # which study a trial belongs to: its result set, like results_dir
)


# Instantiation plumbing: which class or function builds a node, not what it computes.
CODE_LOCATION_KEYS = ("_target_", "_partial_")
# Top-level settings added after runs were recorded, at the value under which those runs ran:
# left out of the hash at that value, so the earlier runs keep their identity.
NEUTRAL_DEFAULTS: dict[str, object] = {}


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
        if k not in NON_IDENTIFYING_KEYS
        and not (k in NEUTRAL_DEFAULTS and v == NEUTRAL_DEFAULTS[k])
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
    """An exclusive, non-blocking `flock` on `<run_dir>/run.lock`. The kernel releases it when
    the process dies, so a crashed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "run.lock"
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunLockedError(
                f"{self.path.parent} is being run by another process (pid {holder}); "
                "wait for it or stop it"
            ) from None
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
