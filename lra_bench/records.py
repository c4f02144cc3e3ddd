"""The run record: one JSON file per run (`<run_dir>/record.json`), written atomically, read and
validated through one type, `RunRecord`. The leaderboard is computed from these files only.

Schema 2 (schema 1 differed only in how `config_hash` and `variant` were computed: over the
config with its `_target_` module paths; `lra-bench records migrate` rewrites such records).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.files import replaced_atomically

SCHEMA_VERSION = 2
RECORD_NAME = "record.json"
STATUSES = ("ok", "failed", "diverged", "oom")


@dataclass
class RunRecord:
    """What one run did. Identity: task, model, profile, seed, config_hash (the hash of what
    defines the experiment, lra_bench/identity.py) and variant (the same without the seed: runs
    that differ only in their seed share it). status: ok | failed | diverged | oom, with `error`
    saying why when not ok. Accuracies are fractions of the split, at the best-validation step.
    """

    task: str
    model: str
    profile: str
    seed: int
    config_hash: str
    variant: str
    status: str = "failed"
    error: str | None = None
    traceback: str | None = None
    config: dict = field(default_factory=dict)  # resolved
    overrides: list = field(default_factory=list)  # the command's Hydra overrides
    git_commit: str | None = None
    git_dirty: bool | None = None
    started_at: str | None = None
    finished_at: str | None = None
    environment: dict = field(default_factory=dict)  # device, torch, cuda, python, threads, ...
    data_fingerprint: str | None = None
    validation_is_test: bool = False
    split_sizes: dict = field(default_factory=dict)
    test_majority_rate: float | None = None
    parameters: int | None = None
    kernel_backends: dict = field(default_factory=dict)  # {mixer: what computed it}
    best_step: int | None = None
    best_val_accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    steps: int | None = None
    train_seconds: float | None = None
    wall_seconds: float | None = None
    steps_per_second: float | None = None
    peak_memory_bytes: int | None = None
    final_train_loss: float | None = None
    history: list = field(default_factory=list)  # [{step, train_loss, val_accuracy}]
    # One entry per time a process took over from an earlier, stopped one: {from_step, at,
    # checkpoint (the file resumed from, null when it restarted at step 0), set_aside (damaged
    # files moved aside)}. wall_seconds and train_seconds include the earlier processes' time.
    resumes: list = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    def problems(self) -> list[str]:
        """What makes this record invalid (empty when valid)."""
        found = _type_problems(self)
        if self.schema != SCHEMA_VERSION:
            found.append(f"schema {self.schema}, expected {SCHEMA_VERSION}")
        if self.status not in STATUSES:
            found.append(f"status {self.status!r} not in {STATUSES}")
        for name in ("task", "model", "profile", "config_hash", "variant"):
            if isinstance(getattr(self, name), str) and not getattr(self, name):
                found.append(f"{name} must not be empty")
        if self.status == "ok":
            for name in ("test_accuracy", "val_accuracy"):
                value = getattr(self, name)
                if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                    found.append(f"status ok needs {name} in [0, 1], got {value!r}")
        elif not self.error:
            found.append(f"status {self.status} needs an error saying why")
        return found

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> RunRecord:
        """A record from parsed JSON; ValueError naming `where` if it is not a valid record."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a run record is a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls) if _required(f)]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{where}: run record lacks {', '.join(missing)}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: run record has unknown fields {', '.join(unknown)}")
        record = cls(**data)
        problems = record.problems()
        if problems:
            raise ValueError(f"{where}: invalid run record: {'; '.join(problems)}")
        return record

    def write(self, run_dir: Path, name: str = RECORD_NAME) -> Path:
        """Writes run_dir/record.json (or `name`) through a temporary file flushed to the disk
        and a rename, so that a reader, or a machine that lost power, sees the old record or
        the new one, never half of one. An invalid record is refused."""
        problems = self.problems()
        if problems:
            raise ValueError(f"refusing to write an invalid run record: {'; '.join(problems)}")
        path = Path(run_dir) / name
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_plain) + "\n"
        with replaced_atomically(path, durable=True) as tmp:
            tmp.write_text(text)
        return path

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """One record; ValueError naming the file if it is not a valid record."""
        try:
            data = json.loads(Path(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(data, where=str(path))


def _type_problems(record: RunRecord) -> list[str]:
    """Fields whose value does not have the type the dataclass declares."""
    hints = typing.get_type_hints(RunRecord)
    found = []
    for spec in dataclasses.fields(RunRecord):
        value = getattr(record, spec.name)
        if not _has_type(value, hints[spec.name]):
            found.append(f"{spec.name} must be {_type_name(hints[spec.name])}, got {value!r:.60}")
    return found


def _has_type(value: Any, expected: Any) -> bool:
    if isinstance(expected, types.UnionType) or typing.get_origin(expected) is typing.Union:
        return any(_has_type(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    # An integer is a number too; a boolean is neither. numbers.* admit numpy scalars, which
    # a record may hold before it is written (they are written as plain JSON numbers).
    if expected is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    if isinstance(expected, types.UnionType):
        return " or ".join(_type_name(option) for option in typing.get_args(expected))
    return "null" if expected is type(None) else expected.__name__


def _required(spec: dataclasses.Field) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _plain(value):
    """JSON for what json does not know (paths, numpy scalars); NaN stays a float."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return value
    return str(value)


RUNS_DIR = "runs"  # a result set keeps its records in <results_dir>/runs/<task>/<model>/...


def find_records(results_dir: Path) -> list[Path]:
    """The run records of the result set `results_dir`: those under `results_dir/runs/`, and
    only those. A results folder nested in it (`results_dir/zoo_mini/runs/...`, made with
    `results_dir=.../zoo_mini`, or one nested under runs/ itself) is a result set of its own,
    with its own leaderboard, and is never counted here."""
    runs = Path(results_dir) / RUNS_DIR
    return sorted(
        path
        for path in runs.rglob(RECORD_NAME)
        if RUNS_DIR not in path.relative_to(runs).parts[:-1]
    )


def find_all_records(root: Path) -> list[Path]:
    """Every run record beneath `root`, nested result sets included (for maintenance: schema
    migration, checks over all committed results)."""
    return sorted(Path(root).rglob(RECORD_NAME))
