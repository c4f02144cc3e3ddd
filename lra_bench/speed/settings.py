"""What one run of the speed protocol measures (`SpeedSettings`): the one place its defaults are
written. The `lra-bench speed` options are made from these fields, and the workers receive
them as JSON, so a default never exists twice."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from lra_bench.compose import CONF_DIR, option_names, task_class

SIZES_FILE = CONF_DIR / "speed" / "sizes.yaml"
GB = 1e9  # memory is reported in GB (10^9 bytes), as the LRA paper's Table 2
LRA_LENGTHS = [1024, 2048, 3072, 4096]  # the paper's Table 2
LONG_LENGTHS = [8192, 16384, 32768, 65536]  # beyond it, for the models that fit


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        # argparse shows this message as it is (a ValueError would become "invalid value")
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers (e.g. 1024,2048), got {text!r}"
        )
    return values


def _names(text: str) -> list[str]:
    """'a,b' -> ['a', 'b']; 'all' -> every conf/model config (the whole zoo)."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    return option_names("model") if names == ["all"] else names


def option(default, help: str, parse=None, flag: str | None = None, **kwargs):
    """A settings field that is also a command-line option (`help`, how to `parse` its text)."""
    metadata = {"help": help, "parse": parse, "flag": flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class SpeedSettings:
    """The LRA paper's Table 2 protocol (Tay et al., 2021, section 4.2) and its knobs."""

    models: list[str] = option(
        ["transformer"], "comma-separated conf/model names, or all", parse=_names
    )
    lengths: list[int] = option(
        LRA_LENGTHS + LONG_LENGTHS,
        "comma-separated sequence lengths (LRA's 1K-4K, then 8K-64K)",
        parse=_ints,
    )
    task: str = option("text", "whose token shape (vocabulary, classes): text is LRA's")
    batch: int = option(32, "sequences per step (LRA: 32)")
    size: str = option("lra_text", "a model size preset of conf/speed/sizes.yaml")
    warmup: int = option(3, "untimed steps per measurement")
    steps: int = option(10, "timed steps per measurement")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    threads: int | None = option(None, "CPU threads per measurement (default: torch's)")
    timeout: float = option(600.0, "seconds per measurement, process start-up included")
    memory_limit_gb: float | None = option(
        None, "cap per measurement: CPU RLIMIT_DATA above the baseline, CUDA allocator fraction"
    )
    count_flops: bool = option(True, "skip FLOP counting and MFU", flag="--no-flops")
    matmul_size: int | None = option(
        None, "side of the peak-FLOP/s matmul (default 2048 CPU, 8192 CUDA; 0 = no peak)"
    )
    # Extra worker flags (the tests inject an allocation with it); not a command-line option.
    worker_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("no models to measure")
        unknown = sorted(set(self.models) - set(option_names("model")))
        if unknown:
            raise ValueError(
                f"--models: no conf/model config named {', '.join(unknown)}; "
                f"choose from {', '.join(option_names('model'))} or all"
            )
        if not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"--lengths must be positive, got {self.lengths}")
        for name in ("batch", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.timeout <= 0:
            raise ValueError(f"need --warmup >= 0 and --timeout > 0: {self.warmup}, {self.timeout}")
        task_shape(self.task)  # an unknown or pair task fails here, before any worker starts
        load_size(self.size)
        self.lengths = sorted(set(self.lengths))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SpeedSettings:
        return cls(**json.loads(text))


def load_size(name: str) -> dict:
    """The model size preset `name` of conf/speed/sizes.yaml: d_model, n_layers, d_ff, n_heads."""
    from omegaconf import OmegaConf

    sizes = OmegaConf.to_container(OmegaConf.load(SIZES_FILE))
    if name not in sizes:
        raise ValueError(f"--size {name!r} is not in {SIZES_FILE}; choose from {sorted(sizes)}")
    return sizes[name]


def task_shape(task: str) -> tuple[int, int]:
    """(vocabulary incl. padding, classes) of a task's token sequences, read from its loader:
    the protocol needs shapes only, so no data set is read."""
    if task not in option_names("task"):
        raise ValueError(f"--task {task!r}: choose from {', '.join(option_names('task'))}")
    loader = task_class(task)
    if loader.pair:
        raise ValueError(f"--task {task}: pair tasks (two documents per example) are not covered")
    return loader.vocab_size, loader.num_classes
