"""The strongest outside implementation of an op importable on this machine, timed beside its
backends: SDPA (its flash backend forced on CUDA) for attention, `mamba_ssm`'s selective scan,
`flash-linear-attention`'s chunked GLA. Importability is checked at run time; an absent package
is reported as "not installed".

A peer is prepare(inputs) -> a function of no arguments that runs the peer's forward and
returns its output, with the layout changes made once, outside the timing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.kernels.cases import Inputs


class PeerUnavailable(RuntimeError):
    """The peer cannot run here (not installed, or not for this device); the message says why."""


@dataclass
class Peer:
    name: str
    package: str | None  # the module that must be importable (None: torch itself)
    prepare: Callable[[Inputs, torch.device], tuple[Callable[[], torch.Tensor], list[torch.Tensor]]]

    def check(self) -> None:
        if (
            self.package is not None
            and importlib.util.find_spec(self.package.split(".")[0]) is None
        ):
            raise PeerUnavailable(f"{self.package.split('.')[0]} not installed")


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of x as a new leaf that requires grad as x did."""
    return x.detach().contiguous().requires_grad_(x.requires_grad)


def _sdpa(inputs: Inputs, device: torch.device):
    q, k, v = (_leaf(x) for x in inputs.args[:3])
    if device.type == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def context():
            return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    else:
        context = contextlib.nullcontext

    def run():
        with context():
            return F.scaled_dot_product_attention(q, k, v)

    return run, [q, k, v]


def _mamba_selective_scan(inputs: Inputs, device: torch.device):
    if device.type != "cuda":
        raise PeerUnavailable("mamba_ssm's selective scan is CUDA only")
    module = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    u, delta, a, b, c, d, _ = inputs.args
    # mamba_ssm's layout: u, delta (B, D, L); B, C (B, N, L).
    u, delta, b, c = (_leaf(x.transpose(1, 2)) for x in (u, delta, b, c))
    a, d = _leaf(a), _leaf(d)

    def run():
        return module.selective_scan_fn(u, delta, a, b, c, d)

    return run, [u, delta, a, b, c, d]


def _fla_chunk_gla(inputs: Inputs, device: torch.device):
    if device.type != "cuda":
        raise PeerUnavailable("flash-linear-attention's kernels are CUDA only")
    chunk_gla = importlib.import_module("fla.ops.gla").chunk_gla
    q, k, v, log_decay, _, _ = inputs.args
    # fla's layout: (B, T, H, K); older versions read (B, H, T, K) unless head_first=False.
    q, k, v, g = (_leaf(x.transpose(1, 2)) for x in (q, k, v, log_decay))
    options = {"scale": 1.0}  # our op does not scale q
    if "head_first" in inspect.signature(chunk_gla).parameters:
        options["head_first"] = False

    def run():
        return chunk_gla(q, k, v, g, **options)[0]

    return run, [q, k, v, g]


# op name -> its peers (the strongest importable one first).
PEERS: dict[str, list[Peer]] = {
    "attention": [Peer("sdpa", None, _sdpa)],  # flash backend forced on CUDA
    "selective_scan": [
        Peer("mamba_ssm", "mamba_ssm.ops.selective_scan_interface", _mamba_selective_scan)
    ],
    "gated_linear_attention": [Peer("fla chunk_gla", "fla.ops.gla", _fla_chunk_gla)],
}
