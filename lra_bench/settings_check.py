"""Every setting a run uses, checked before any data is read or any folder is made.

`check_settings(cfg, choices)` raises one `SettingsError` whose one line names each key at fault,
its value and what is allowed; the Hydra app prints it and exits 2, leaving no record. It holds
the composed config to:

- keys: a top-level key, or a key of `model` / `task` / `profile` / `attention`, that no file of
  conf/ defines (a `+key=value` typo, `+wandb=true`); a trainer key that `TrainerConfig` lacks; a
  kernels key that `KernelSettings` lacks; a key of a `_target_` node that its class or function
  does not take.
- values: `seed` an integer in [0, 2^32); `device` auto / cpu / cuda[:N] (CUDA present when
  asked for); `progress`, `force` booleans; `checkpoint_every` >= 0; `tuning` null or a study
  name; `logger` csv or wandb (wandb installed), `logger.every` >= 1; `results_dir` and
  `data_root` folders (or not yet there); every trainer field of the type `TrainerConfig`
  declares, within the bounds its metadata gives; the kernels node as `models.ops.configure`
  accepts it; integer / float / boolean arguments of `_target_` nodes as their signatures say.
- composition: an `experiment=` whose task or model is not the run's (S4's settings on a
  Transformer), a `task_profile=` of another task or profile.
- self-pretraining: the `pretrain` node's keys, its trainer as `TrainerConfig`, and what
  lra_bench/pretraining.py `problems` refuses (causal pretraining of a mixer without a causal
  form, masked pretraining of a causal one, ...); such a refusal is said alone, without the
  unknown `causal` key it would also cause.
- construction: the task's loader is made (its own checks, no data read) and the model is built
  on the `meta` device (its constructors' checks, no memory), so that `pooling=middle` is
  refused here and not after the data were loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

import lra_bench.pretraining as pretraining
from lra_bench.compose import CONF_DIR, option_names
from lra_bench.engine import TrainerConfig

# Keys Hydra reads from a `_target_` node itself; the rest are arguments of the target.
HYDRA_NODE_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
# Group nodes whose own keys (not only their `_target_` children's) are checked against conf/.
CHECKED_NODES = ("model", "task", "profile", "attention", "pretrain", "logger")
GROUPS = ("task", "model", "profile")  # the groups that name a run (and its experiment file)
# Config groups whose files sit at their group's key.
GROUP_FILES = (*GROUPS, "logger")
# Config groups whose files sit at another key (conf/config.yaml's defaults say `@pretrain`).
PACKAGES = {"pretrain": "pretrain", "pretrain_profile": "pretrain"}
LOGGERS = ("csv", "wandb")
SEED_LIMIT = 2**32  # numpy's global seed must be below it


class SettingsError(ValueError):
    """Settings a run refuses to start with; the message is one line naming each culprit."""


def check_settings(cfg: DictConfig, choices: Mapping[str, str | None] | None = None) -> None:
    """Raises SettingsError naming every problem of the composed config `cfg`. choices: Hydra's
    `runtime.choices` (which file each config group took), when the app has them."""
    problems = settings_problems(cfg, choices)
    if problems:
        raise SettingsError("; ".join(problems))


def settings_problems(
    cfg: DictConfig, choices: Mapping[str, str | None] | None = None
) -> list[str]:
    """Every problem of `cfg`, one short sentence each (empty when the run may start)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # an interpolation that does not resolve
        return [_one_line(error)]
    refused = pretraining.problems(cfg)
    if refused:  # said alone: e.g. causal=true on a mixer that has no such setting
        return refused
    problems = unknown_keys(config)
    problems += run_setting_problems(config)
    problems += dataclass_problems(config.get("trainer", {}), TrainerConfig, "trainer")
    pretrain_trainer = (config.get("pretrain") or {}).get("trainer", {})
    problems += dataclass_problems(pretrain_trainer, TrainerConfig, "pretrain.trainer")
    problems += kernel_problems(config.get("kernels", {}))
    problems += choice_problems(choices or {})
    problems += target_problems(config)
    if not problems:  # construction needs well-typed settings to say anything useful
        problems += construction_problems(cfg)
    return problems


# --- keys ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def known_keys() -> dict[str, set[str]]:
    """{'': top-level keys, node: its keys} defined anywhere in conf/: config.yaml, the group
    files (at their group's key) and the `_global_` files (task_profile/, experiment/, profile/)."""
    known: dict[str, set[str]] = {"": set(GROUP_FILES)}
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        relative = path.relative_to(CONF_DIR)
        if relative.parts[0] in ("hydra", "speed"):
            continue
        text = path.read_text()
        content = yaml.safe_load(text) or {}
        if not isinstance(content, dict):
            continue
        content.pop("defaults", None)
        content.pop("hydra", None)
        if "@package _global_" not in text and relative.parts[0] in (*GROUP_FILES, *PACKAGES):
            content = {PACKAGES.get(relative.parts[0], relative.parts[0]): content}
        for key, value in content.items():
            known[""].add(key)
            if isinstance(value, dict):
                known.setdefault(key, set()).update(value)
    return known


def unknown_keys(config: dict) -> list[str]:
    """Keys that nothing in conf/ or the trainer and kernel schemas defines."""
    known = known_keys()
    problems = []
    extra = sorted(set(config) - known[""])
    if extra:
        problems.append(
            f"unknown setting(s) {', '.join(extra)}: no file of conf/ defines them "
            "(a `+key=value` adds a key; check its spelling)"
            + ("; W&B logging is logger=wandb" if "wandb" in extra else "")
        )
    for node in CHECKED_NODES:
        if isinstance(config.get(node), dict):
            extra = sorted(set(config[node]) - known.get(node, set()))
            if extra:
                problems.append(
                    f"unknown setting(s) {', '.join(f'{node}.{k}' for k in extra)}: "
                    f"{node} takes {', '.join(sorted(known.get(node, ())))}"
                )
    return problems


# --- the run's own settings -----------------------------------------------------------------------


def run_setting_problems(config: dict) -> list[str]:
    problems = []
    seed = config.get("seed")
    if not _is_int(seed) or not 0 <= seed < SEED_LIMIT:
        problems.append(f"seed={_show(seed)}: expected an integer in [0, {SEED_LIMIT})")
    for name in ("progress", "force"):
        if not isinstance(config.get(name), bool):
            problems.append(f"{name}={_show(config.get(name))}: expected true or false")
    every = config.get("checkpoint_every")
    if not _is_int(every) or every < 0:
        problems.append(
            f"checkpoint_every={_show(every)}: expected an integer >= 0 (0: at evaluations)"
        )
    for name in ("results_dir", "data_root"):
        value = config.get(name)
        if not isinstance(value, str) or not value:
            problems.append(f"{name}={value!r}: expected a folder")
        elif Path(value).exists() and not Path(value).is_dir():
            problems.append(f"{name}={value!r}: is a file, expected a folder")
    problems += device_problems(config.get("device"))
    tuning = config.get("tuning")
    if tuning is not None and (not isinstance(tuning, str) or not tuning or "/" in tuning):
        problems.append(f"tuning={_show(tuning)}: expected null or a study name (no '/')")
    problems += logger_problems(config.get("logger"))
    return problems


def logger_problems(node: object) -> list[str]:
    """logger: one of LOGGERS, a positive `every`; wandb importable when asked for."""
    if not isinstance(node, dict):
        return [f"logger={node!r}: expected one of {', '.join(LOGGERS)} (conf/logger/)"]
    problems = []
    name, every = node.get("name"), node.get("every")
    if name not in LOGGERS:
        problems.append(f"logger.name={_show(name)}: expected one of {', '.join(LOGGERS)}")
    if not _is_int(every) or every < 1:
        problems.append(f"logger.every={_show(every)}: expected an integer >= 1")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        problems.append(
            "logger=wandb: the wandb package is not installed (pip install 'lra-bench[logging]')"
        )
    return problems


def device_problems(device: object) -> list[str]:
    if device == "auto":
        return []
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        return [f"device={device!r}: expected auto, cpu, cuda or cuda:N"]
    if parsed.type == "cuda" and not torch.cuda.is_available():
        return [f"device={device!r}: torch sees no CUDA device here (device=auto picks the CPU)"]
    if parsed.type == "cuda" and parsed.index is not None:
        if parsed.index >= torch.cuda.device_count():
            return [f"device={device!r}: there are {torch.cuda.device_count()} CUDA device(s)"]
    return []


def dataclass_problems(node: object, schema: type, prefix: str) -> list[str]:
    """`node` against a dataclass: no unknown keys; each value of the declared type, within the
    bounds of the field's metadata (at_least, above, choices, each_within)."""
    if not isinstance(node, dict):
        return [f"{prefix}={node!r}: expected a group of settings"]
    fields = {spec.name: spec for spec in dataclasses.fields(schema)}
    problems = []
    extra = sorted(set(node) - set(fields))
    if extra:
        problems.append(
            f"unknown setting(s) {', '.join(f'{prefix}.{k}' for k in extra)}: {prefix} takes "
            f"{', '.join(fields)}"
        )
    hints = typing.get_type_hints(schema)
    for name, value in node.items():
        if name in fields:
            problem = value_problem(value, hints[name], fields[name].metadata)
            if problem:
                problems.append(f"{prefix}.{name}={_show(value)}: expected {problem}")
    if not problems and "batch_size" in fields and "grad_accum" in fields:
        if node.get("batch_size", 1) % node.get("grad_accum", 1):
            problems.append(
                f"{prefix}.batch_size={node['batch_size']} is not divisible by "
                f"{prefix}.grad_accum={node['grad_accum']}"
            )
    return problems


def value_problem(value: object, hint: object, allowed: Mapping | None = None) -> str | None:
    """What `value` should have been (None when it is fine) for a type hint and bounds."""
    allowed = allowed or {}
    optional, hint = _strip_optional(hint)
    if value is None:
        return None if optional else f"{_describe(hint, allowed)}, not null"
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = _is_int(value)
    elif hint is float:
        ok = _is_number(value)
    elif hint is str:
        ok = isinstance(value, str)
    elif typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        ok = (
            isinstance(value, list | tuple)
            and len(value) == len(items)
            and all(value_problem(v, t, {}) is None for v, t in zip(value, items))
        )
    else:  # a type this check does not know: the constructor will say
        return None
    if not ok or not _within(value, allowed):
        return _describe(hint, allowed, optional)
    return None


def _within(value: object, allowed: Mapping) -> bool:
    if "choices" in allowed and value not in allowed["choices"]:
        return False
    if "at_least" in allowed and not value >= allowed["at_least"]:
        return False
    if "above" in allowed and not value > allowed["above"]:
        return False
    if "each_within" in allowed:
        low, high = allowed["each_within"]
        return all(low <= item < high for item in value)
    return True


def _describe(hint: object, allowed: Mapping, optional: bool = False) -> str:
    if "choices" in allowed:
        text = "one of " + ", ".join(map(str, allowed["choices"]))
    else:
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        if typing.get_origin(hint) is tuple:
            text = f"a list of {len(typing.get_args(hint))} numbers"
        else:
            text = names.get(hint, getattr(hint, "__name__", str(hint)))
        if "at_least" in allowed:
            text += f" >= {allowed['at_least']:g}"
        if "above" in allowed:
            text += f" > {allowed['above']:g}"
        if "each_within" in allowed:
            low, high = allowed["each_within"]
            text += f", each in [{low:g}, {high:g})"
    return text + (" or null" if optional else "")


def _strip_optional(hint: object) -> tuple[bool, object]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        optional = len(options) < len(typing.get_args(hint))
        return optional, options[0] if len(options) == 1 else hint
    return False, hint


def _show(value: object) -> str:
    """A value as it is written on the command line (true, null, 'text', 3)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def kernel_problems(node: object) -> list[str]:
    """The kernels node as models.ops.configure takes it (which refuses unknown backends and
    ops; the run calls it with the same values)."""
    import models.ops as ops
    from models.ops.dispatch import KernelSettings

    problems = dataclass_problems(node, KernelSettings, "kernels")
    if problems:
        return problems
    try:
        ops.configure(**node)
    except ValueError as error:
        return [_one_line(error)]
    return []


# --- composition ------------------------------------------------------------------------------------


def choice_problems(choices: Mapping[str, str | None]) -> list[str]:
    """An experiment or task_profile file chosen by hand must be of the run's task and model
    (and profile, where the file is named after one)."""
    task, model, profile = (choices.get(g) for g in GROUPS)
    problems = []
    experiment = choices.get("experiment")
    if experiment and task and model:
        parts = experiment.split("/")
        named_profile = (
            parts[2] if len(parts) == 3 and parts[2] in option_names("profile") else None
        )
        if len(parts) != 3 or parts[:2] != [task, model] or named_profile not in (None, profile):
            problems.append(
                f"experiment={experiment}: settings for another run than task={task} "
                f"model={model} profile={profile}; choose the task, model and profile instead "
                "and their experiment file applies itself"
            )
    task_profile = choices.get("task_profile")
    if task_profile and task and profile and task_profile != f"{task}/{profile}":
        problems.append(
            f"task_profile={task_profile}: sizes of another task or profile than task={task} "
            f"profile={profile}; set task= and profile= instead"
        )
    return problems


# --- _target_ nodes --------------------------------------------------------------------------------


def target_problems(config: dict) -> list[str]:
    """Keys of every `_target_` node under task and model against its target's signature, and
    integer / float / boolean values against its annotations."""
    problems = []
    for prefix in ("task", "model"):
        problems += _target_node_problems(config.get(prefix), prefix)
    return problems


def _target_node_problems(node: object, prefix: str) -> list[str]:
    if isinstance(node, list):
        return [p for i, item in enumerate(node) for p in _target_node_problems(item, prefix)]
    if not isinstance(node, dict):
        return []
    problems = []
    if "_target_" in node:
        problems += _signature_problems(node, prefix)
    for key, value in node.items():
        if key not in HYDRA_NODE_KEYS:
            problems += _target_node_problems(value, f"{prefix}.{key}")
    return problems


def _signature_problems(node: dict, prefix: str) -> list[str]:
    try:
        target = get_object(node["_target_"])
        signature = inspect.signature(target)
    except Exception as error:
        return [f"{prefix}._target_={node['_target_']!r}: cannot be imported ({_one_line(error)})"]
    parameters = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    arguments = {k: v for k, v in node.items() if k not in HYDRA_NODE_KEYS}
    name = getattr(target, "__name__", str(target))
    problems = []
    extra = sorted(set(arguments) - set(parameters))
    if extra and not takes_any:
        problems.append(
            f"unknown setting(s) {', '.join(f'{prefix}.{k}' for k in extra)}: {name} takes "
            f"{', '.join(p for p in parameters if p not in ('self', 'args', 'kwargs'))}"
        )
    hints = _type_hints(target)
    for key, value in arguments.items():
        if key in hints and value is not None:
            _, hint = _strip_optional(hints[key])
            if hint in (bool, int, float) and value_problem(value, hint) is not None:
                problems.append(
                    f"{prefix}.{key}={_show(value)}: expected {value_problem(value, hint)}"
                )
    return problems


def _type_hints(target: object) -> dict:
    try:
        return typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # annotations that do not evaluate here: the constructor will check
        return {}


# --- construction ------------------------------------------------------------------------------------


def construction_problems(cfg: DictConfig) -> list[str]:
    """The task loader made (no data read) and the model built on the meta device (no memory):
    their constructors' own checks, before anything is loaded."""
    try:
        loader = instantiate(cfg.task.data)
    except Exception as error:
        return [_with_prefix(_cause(error), "task.data")]
    try:
        with torch.device("meta"):
            instantiate(
                cfg.model.backbone,
                vocab_size=loader.vocab_size,
                num_classes=loader.num_classes,
                max_length=loader.max_length,
                **({"pair": True} if loader.pair else {}),
            )
    except Exception as error:
        cause = _cause(error)
        # A model that cannot be built on the meta device (it reads a value with .item()) is
        # checked when it is built for real.
        if isinstance(cause, ValueError | TypeError) and "meta" not in str(cause):
            return [_with_prefix(cause, "model.backbone")]
    return []


def _cause(error: BaseException) -> BaseException:
    """The constructor's own error inside Hydra's InstantiationException."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _with_prefix(error: BaseException, prefix: str) -> str:
    text = _one_line(error)
    return text if text.startswith(prefix.split(".")[0] + ".") else f"{prefix}: {text}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
