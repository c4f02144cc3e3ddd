"""Benchmark inputs of every op of models/ops at realistic LRA shapes: the op's positional
arguments (floating and complex tensors that the model trains have requires_grad) and keyword
options, with the shape's forward FLOPs (flops.py).

Two sizes per op: `cuda`, the upper end of the LRA settings (batch 8-16, widths 256-512), and
`cpu`, batch 1-2 at the same widths, so that a run on 2 CPU cores stays near 10 minutes. The
Vandermonde kernel does not depend on the batch and has one size. Real tensors are made in float32 and cast by the runner to the run's
dtype; complex tensors stay complex64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.kernels import flops
from models.ops.attention import AttentionPattern


@dataclass
class Inputs:
    args: tuple
    options: dict
    flops: float | None  # forward FLOPs (flops.py), None where not counted
    shape: str  # the sizes, for the report


@dataclass
class Case:
    """make(length, device, size) -> Inputs; size is 'cuda' or 'cpu'. half: run real inputs
    in bfloat16 on CUDA by default (what autocast gives the op, and what flash attention needs).
    slow_reference_cpu: why the op's reference is not timed on CPU at the benchmark's lengths.
    """

    make: Callable[[int, str, str], Inputs]
    half: bool = False
    slow_reference_cpu: str | None = None  # why the reference is not timed on CPU, if it is not
    forward_only: str | None = None  # why the op has no backward (its "fwd+bwd" is its forward)


def _randn(*shape, device, scale=1.0, grad=True):
    return (torch.randn(*shape, device=device) * scale).requires_grad_(grad)


def _complex(*shape, device, scale=1.0, grad=True):
    return (torch.randn(*shape, device=device, dtype=torch.complex64) * scale).requires_grad_(grad)


def attention(length, device, size):
    b, h, e = (8, 8, 64) if size == "cuda" else (1, 4, 64)
    q, k, v = (_randn(b, h, length, e, device=device) for _ in "qkv")
    valid = torch.ones(b, length, dtype=torch.bool, device=device)
    shape = f"B {b}, H {h}, E {e}, full, no padding"
    return Inputs(
        (q, k, v, valid, AttentionPattern(), 0.0), {}, flops.attention(b, h, length, e), shape
    )


def selective_scan(length, device, size):
    b, d, n = (8, 512, 16) if size == "cuda" else (1, 256, 16)
    u = _randn(b, length, d, device=device)
    delta = F.softplus(_randn(b, length, d, device=device, grad=False) - 2).requires_grad_()
    a = (-torch.exp(_randn(d, n, device=device, scale=0.5, grad=False))).requires_grad_()
    bb, cc = _randn(b, length, n, device=device), _randn(b, length, n, device=device)
    dd = _randn(d, device=device)
    shape = f"B {b}, D {d}, N {n}"
    return Inputs((u, delta, a, bb, cc, dd, None), {}, flops.selective_scan(b, length, d, n), shape)


def ssd(length, device, size):
    b, h, p, g, n = (8, 8, 64, 1, 64) if size == "cuda" else (1, 8, 64, 1, 64)
    x = _randn(b, length, h, p, device=device)
    log_a = (-F.softplus(_randn(b, length, h, device=device, grad=False) - 3)).requires_grad_()
    bb, cc = (_randn(b, length, g, n, device=device, scale=n**-0.5) for _ in "BC")
    shape = f"B {b}, H {h}, P {p}, groups {g}, N {n}"
    return Inputs((x, log_a, bb, cc, None), {}, flops.ssd(b, length, h, p, n), shape)


def gated_linear_attention(length, device, size):
    b, h, k, v = (8, 4, 64, 64) if size == "cuda" else (1, 4, 64, 64)
    q, key = (
        _randn(b, h, length, k, device=device, scale=k**-0.5),
        _randn(b, h, length, k, device=device),
    )
    values = _randn(b, h, length, v, device=device)
    # GLA's gates: logsigmoid / 16, decays close to 1.
    raw = _randn(b, h, length, k, device=device, grad=False)
    log_decay = (F.logsigmoid(raw) / 16).requires_grad_()
    shape = f"B {b}, H {h}, K {k}, V {v}, GLA decay"
    work = flops.gated_linear_attention(b, h, length, k, v)
    return Inputs((q, key, values, log_decay, None, None), {}, work, shape)


def vandermonde(length, device, size):
    c, h, n = 2, 256, 64
    coefficients = _complex(c, h, n, device=device)
    log_lambda = torch.complex(
        -torch.rand(h, n, device=device) * 0.05, torch.rand(h, n, device=device) * 3
    ).requires_grad_()
    shape = f"c {c}, h {h}, n {n} (S4D, bidirectional), no shift"
    return Inputs(
        (coefficients, log_lambda, length, None), {}, flops.vandermonde(c, h, n, length), shape
    )


def favor(length, device, size):
    b, h, d, m, e = (8, 4, 64, 256, 64) if size == "cuda" else (1, 4, 64, 256, 64)
    # q, k as the Performer passes them: scaled by d^-1/4; the projection is a buffer.
    q, k = (_randn(b, h, length, d, device=device, scale=d**-0.25) for _ in "qk")
    v = _randn(b, h, length, e, device=device)
    projection = torch.randn(m, d, device=device)
    mask = torch.ones(b, length, dtype=torch.bool, device=device)
    shape = f"B {b}, H {h}, d {d}, m {m} features, e {e} (Performer, bidirectional)"
    work = flops.favor(b, h, length, d, m, e)
    return Inputs((q, k, v, projection, mask, torch.finfo(torch.float32).tiny), {}, work, shape)


def dropout(length, device, size):
    b, d = (16, 512) if size == "cuda" else (8, 256)
    x = _randn(b, length, d, device=device)
    shape = f"B {b}, D {d}, p 0.1 (every block's activations)"
    return Inputs((x, 0.1, 1234), {}, flops.dropout(b * length * d), shape)


def causal_conv1d(length, device, size):
    b, c = (16, 1024) if size == "cuda" else (4, 512)
    x = _randn(b, length, c, device=device)
    weight, bias = _randn(c, 4, device=device, scale=0.5), _randn(c, device=device)
    shape = f"B {b}, C {c}, K 4, SiLU (Mamba's conv at expand 2, D {c // 2})"
    return Inputs((x, weight, bias, "silu"), {}, flops.causal_conv1d(b, length, c, 4), shape)


def fft_conv(length, device, size):
    b, h = (16, 256) if size == "cuda" else (2, 256)
    u = _randn(b, h, length, device=device)
    k_forward, k_backward = (_randn(h, length, device=device, scale=length**-0.5) for _ in "fb")
    shape = f"B {b}, h {h}, bidirectional"
    return Inputs((u, k_forward, k_backward), {}, flops.fft_conv(b, h, length, True), shape)


def diagonal_recurrence(length, device, size):
    b, n = (16, 128) if size == "cuda" else (2, 128)
    log_lambda = torch.complex(
        -torch.rand(n, device=device) * 0.1, torch.rand(n, device=device) * 3
    ).requires_grad_()
    v = _complex(b, length, n, device=device)
    shape = f"B {b}, n {n} (S5 / LRU), forward"
    return Inputs((log_lambda, v, None, False), {}, flops.diagonal_recurrence(b, length, n), shape)


def dplr_kernel(length, device, size):
    from models.ssm.hippo import legs_diagonal_plus_low_rank

    c, h, state = (2, 256, 64) if size == "cuda" else (2, 128, 64)
    lam, p, b, _ = legs_diagonal_plus_low_rank(state)
    lam, p, b = (x.to(torch.complex64).expand(h, -1).to(device).clone() for x in (lam, p, b))
    c_tilde = _complex(c, h, state // 2, device=device, grad=False)
    dt = torch.exp(torch.empty(h, device=device).uniform_(-6.9, -2.3))
    leaves = [x.requires_grad_() for x in (dt, lam, p, b, c_tilde)]
    shape = f"c {c}, h {h}, N {state} (S4 LegS)"
    return Inputs((*leaves, length), {}, flops.dplr_kernel(), shape)


def lsh_bias(length, device, size):
    b, h = (16, 8) if size == "cuda" else (2, 4)
    chunk, rounds = 64, 2
    padded = -(-length // chunk) * chunk
    n_buckets = max(2, 2 * (padded // chunk // 2))  # about L / chunk_size, even (the config's rule)
    buckets = torch.randint(0, n_buckets, (b, h, rounds, padded), device=device)
    order = (buckets * padded + torch.arange(padded, device=device)).argsort(-1)
    shape = f"B {b}, H {h}, 2 rounds, chunks of {chunk}, {n_buckets} buckets (Reformer)"
    work = flops.lsh_bias(b, h, rounds, padded, chunk)
    return Inputs((buckets, order, n_buckets, chunk, False), {}, work, shape)


# op name -> its case. An op without one is listed in the report as "no benchmark case".
CASES: dict[str, Case] = {
    "attention": Case(attention, half=True),
    "selective_scan": Case(selective_scan),
    "ssd": Case(ssd),
    "gated_linear_attention": Case(gated_linear_attention),
    "favor": Case(favor),
    "dropout": Case(dropout),
    "causal_conv1d": Case(causal_conv1d),
    "vandermonde": Case(vandermonde),
    "fft_conv": Case(
        fft_conv,
        slow_reference_cpu="the direct O(L^2) sum, a Python loop over L, takes minutes from "
        "L = 1024 (measured: 60 s forward + backward at L = 512, B 4, h 256, 2 cores)",
    ),
    "diagonal_recurrence": Case(diagonal_recurrence),
    "lsh_bias": Case(lsh_bias, forward_only="a function of bucket and position indices"),
    "dplr_kernel": Case(
        dplr_kernel,
        slow_reference_cpu="L dense (N x N) complex steps: 134 s forward + backward at L = 1024, "
        "h 256 (measured on 2 cores)",
    ),
}


def build(op: str, length: int, device: torch.device, dtype: torch.dtype | None) -> Inputs:
    """The case's inputs on `device`, real tensors cast to `dtype` (None: float32, or bfloat16
    on CUDA for `half` cases), gradients still required where they were."""
    case = CASES[op]
    size = "cuda" if device.type == "cuda" else "cpu"
    torch.manual_seed(0)
    inputs = case.make(length, str(device), size)
    if dtype is None:
        dtype = torch.bfloat16 if case.half and device.type == "cuda" else torch.float32
    args = []
    for a in inputs.args:
        if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype:
            a = a.detach().to(dtype).requires_grad_(a.requires_grad)
        args.append(a)
    inputs.args = tuple(args)
    return inputs


def dtype_of(inputs: Inputs) -> str:
    """The real dtype the case runs in (the first real tensor's), or complex64."""
    tensors = [a for a in inputs.args if isinstance(a, torch.Tensor)]
    real = [t for t in tensors if t.is_floating_point()]
    return str((real or tensors)[0].dtype).replace("torch.", "")
