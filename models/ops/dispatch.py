"""How an op chooses the form that computes it (its backend), and the record of what ran.

Every op in models/ops/<op>/ has the same parts side by side: `reference.py` (the oracle, plain
PyTorch), `chunked.py` (the PyTorch form that runs anywhere), `triton.py` (GPU kernels) and, where
it pays, `cpu.py` (a compiled CPU kernel). Its `__init__.py` declares one `KernelOp` that names
its backends; calling the op runs one of them:

- `backend_override(...)`, if a block set one (a mixer's `reference()`), wins;
- else `backend=` given to the call (tests; a mixer whose config names its form);
- else the run's settings (`configure`, from the config's `kernels:` node): a backend name for
  every op that has it, or "auto": the op's own preference for the device of its inputs
  (Triton on CUDA, the fastest CPU form elsewhere).

A backend that cannot run says why (`BackendUnavailable`: Triton missing, no CUDA, no compiler).
Asked for by name, or chosen by "auto" on CUDA, it raises with the reason unless the settings say
`fallback="warn"`, in which case the op warns once and runs the next candidate. A backend marked
`optional` (a compiled CPU kernel: a speed-up, never a requirement) is passed over by "auto" with
one printed line, whatever `fallback` says. Either way the record names what ran (`report()`),
e.g. `chunked (fallback from triton: no module named triton)`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

FALLBACKS = ("error", "warn")


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (missing package, device or compiler); the message says why."""


@dataclass
class KernelSettings:
    """The `kernels:` node of the config. backend: 'auto' or a backend name applied to every op
    that has it; per_op: {op name: backend} for single ops; fallback: 'error' | 'warn'."""

    backend: str = "auto"
    fallback: str = "error"
    per_op: dict[str, str] = field(default_factory=dict)


_settings = KernelSettings()
_override = threading.local()
_ops: dict[str, KernelOp] = {}


def configure(backend: str = "auto", fallback: str = "error", per_op: dict | None = None) -> None:
    """Sets the run's kernel settings (the runner calls it with the config's `kernels:`).
    Unknown names are refused here, before any data is read."""
    if fallback not in FALLBACKS:
        raise ValueError(f"kernels.fallback={fallback!r}; choose from {FALLBACKS}")
    per_op = dict(per_op or {})
    registered_ops()
    known = {name for op in _ops.values() for name in op.backends} | {"auto"}
    if backend not in known:
        raise ValueError(f"kernels.backend={backend!r}; choose from {sorted(known)}")
    for name, chosen in per_op.items():
        if name not in _ops:
            raise ValueError(f"kernels.per_op.{name}: no such op; ops are {sorted(_ops)}")
        if chosen != "auto" and chosen not in _ops[name].backends:
            raise ValueError(
                f"kernels.per_op.{name}={chosen!r}; choose from {['auto', *_ops[name].backends]}"
            )
    _settings.backend, _settings.fallback, _settings.per_op = backend, fallback, per_op
    reset_report()


def settings() -> KernelSettings:
    return _settings


@contextlib.contextmanager
def backend_override(backend: str) -> Iterator[None]:
    """Inside the block every op runs `backend` (where it has it): how the mixers' `reference()`
    methods run their ops step by step."""
    previous = getattr(_override, "backend", None)
    _override.backend = backend
    try:
        yield
    finally:
        _override.backend = previous


@dataclass
class Backend:
    """One form of an op. target: 'module:function', imported on first use (so Triton is only
    imported where it is asked for). available(tensors) -> None when it can run on these inputs,
    else the reason it cannot. optional: 'auto' passes it over with one line when unavailable."""

    name: str
    target: str
    available: Callable[[Sequence[torch.Tensor]], str | None] = lambda tensors: None
    optional: bool = False
    # Compiled forms (Triton, C++) can fail to build or launch; a failure of a plain PyTorch form
    # is a bug, never a reason to fall back.
    compiled: bool = False
    _function: Callable | None = None

    def load(self) -> Callable:
        if self._function is None:
            module_name, function_name = self.target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise BackendUnavailable(f"cannot import {module_name}: {error}") from error
            function = getattr(module, function_name)
            # Tuning options that a form does not take (a chunk size, to the reference) are
            # dropped rather than passed, so every form keeps its own honest signature.
            accepted = inspect.signature(function).parameters
            takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())

            def call(*args, **options):
                if not takes_any:
                    options = {k: v for k, v in options.items() if k in accepted}
                return function(*args, **options)

            self._function = call
        return self._function


class KernelOp:
    """An op with several backends.

    name: the op's name (the folder).  backends: its forms.  auto: device type -> backend names
    in order of preference, e.g. {'cuda': ('triton', 'chunked'), 'cpu': ('cpu', 'chunked')}.
    Calling it as op(*tensors, backend=None, **options) runs the chosen backend's function with
    the same arguments and returns its result.
    """

    def __init__(
        self,
        name: str,
        backends: Sequence[Backend],
        auto: dict[str, Sequence[str]],
        register: bool = True,
    ) -> None:
        self.name = name
        self.backends = {backend.name: backend for backend in backends}
        self.auto = {device: tuple(names) for device, names in auto.items()}
        self.ran: dict[str, int] = {}  # label of what ran -> calls, since the last reset
        self._warned: set[str] = set()
        self._broken: dict[str, str] = {}  # backends that failed in this process, and why
        if register:  # (tests build throw-away ops that must not join the registry)
            _ops[name] = self

    def candidates(self, requested: str, device_type: str) -> tuple[list[str], bool]:
        """(backend names to try in order, whether they were asked for by name)."""
        if requested != "auto":
            if requested not in self.backends:
                raise ValueError(
                    f"op {self.name} has no backend {requested!r}; it has {sorted(self.backends)}"
                )
            return [requested], True
        order = self.auto.get(device_type, self.auto.get("cpu", ()))
        return [name for name in order if name in self.backends], False

    def requested(self, backend: str | None) -> str:
        # An override block (a mixer's `reference()`) wins even over a backend the mixer's
        # config names: inside it everything runs step by step.
        override = getattr(_override, "backend", None)
        if override is not None and override in self.backends:
            return override
        if backend is not None:
            return backend
        chosen = _settings.per_op.get(self.name, _settings.backend)
        return chosen if chosen in self.backends else "auto"

    def __call__(self, *args, backend: str | None = None, **kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        names, by_name = self.candidates(self.requested(backend), device_type)
        fallback = _settings.fallback == "warn"
        if by_name and fallback and self.backends[names[0]].compiled:
            names.append(self.plain_form(device_type))
        passed_over: list[str] = []
        for position, name in enumerate(names):
            following = names[position + 1] if position + 1 < len(names) else None
            try:
                result = self._function(name, tensors)(*args, **kwargs)
            except torch.OutOfMemoryError:
                raise
            except Exception as error:
                unavailable = isinstance(error, BackendUnavailable)
                skip_optional = unavailable and self.backends[name].optional and not by_name
                compiled = self.backends[name].compiled
                if following is None or not compiled or not (skip_optional or fallback):
                    if unavailable:
                        raise BackendUnavailable(
                            f"op {self.name}, backend {name}: {error}"
                        ) from None
                    raise
                self._broken[name] = (
                    f"{type(error).__name__}: {error}" if not unavailable else str(error)
                )
                why = "kernels.fallback=warn" if not skip_optional else "optional"
                self._say_once(
                    f"{self.name}: {name} backend unavailable or failed "
                    f"({self._broken[name]}); using {following} ({why})"
                )
                passed_over.append(f"{name}: {self._broken[name]}")
                continue
            label = name if not passed_over else f"{name} (fallback from {'; '.join(passed_over)})"
            self.ran[label] = self.ran.get(label, 0) + 1
            return result
        raise BackendUnavailable(f"op {self.name}: no backend for device {device_type}")

    def plain_form(self, device_type: str) -> str:
        """The first plain PyTorch form in the op's order for this device: where a failed
        compiled backend falls back to."""
        order = [*self.auto.get(device_type, ()), *self.backends]
        return next(name for name in order if not self.backends[name].compiled)

    def _function(self, name: str, tensors: Sequence[torch.Tensor]) -> Callable:
        """The backend's function, or BackendUnavailable with the reason it cannot run."""
        if name in self._broken:
            raise BackendUnavailable(self._broken[name])
        backend = self.backends[name]
        reason = backend.available(tensors)
        if reason is not None:
            raise BackendUnavailable(reason)
        return backend.load()

    def _say_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            print(f"kernels: {message}", file=sys.stderr)


def reset_report() -> None:
    """Forget what ran (the runner calls it before building a model)."""
    for op in _ops.values():
        op.ran.clear()


def report(op_names: Sequence[str] | None = None) -> dict[str, str]:
    """{op name: what ran (labels joined by ' + ' if several)} for the ops that ran, or for
    `op_names` only."""
    names = _ops if op_names is None else op_names
    return {
        name: " + ".join(sorted(_ops[name].ran))
        for name in names
        if name in _ops and _ops[name].ran
    }


def registered_ops() -> dict[str, KernelOp]:
    """Every op of models/ops (each folder is imported, which imports no kernel module)."""
    import pkgutil

    import models.ops

    for info in pkgutil.iter_modules(models.ops.__path__):
        if info.ispkg:
            importlib.import_module(f"models.ops.{info.name}")
    return dict(_ops)


def triton_runs_here(tensors: Sequence[torch.Tensor]) -> str | None:
    """The `available` check of every Triton backend: CUDA tensors, or CPU tensors under the
    Triton interpreter (TRITON_INTERPRET=1, set before Triton is first imported: the tests)."""
    import os

    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if tensors and tensors[0].device.type != "cuda" and not interpreted:
        return f"Triton kernels run on CUDA tensors (got {tensors[0].device.type}; TRITON_INTERPRET=1 runs them on CPU)"
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed"
    return None
