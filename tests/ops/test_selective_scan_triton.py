"""The Triton selective scan beyond the generic backend test (test_backends.py): several chunks
and channel blocks in one sequence, an initial state without the D skip, non-contiguous and
flipped inputs, bf16 and mixed dtypes, one output unused, the no-grad path, the memory the
forward keeps for the backward, and the Mamba mixer on it. On CPU the kernels run in Triton's
interpreter (tests/conftest.py), so shapes stay small; that the kernels also compile for the
H200 (sm_90) is checked without a GPU, with Triton's own compiler and ptxas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.mixers.mamba import Mamba
from models.ops.dispatch import backend_override, triton_runs_here
from models.ops.selective_scan import OP, selective_scan
from tests.ops.compare import TOLERANCE, relative_rmse

REPO = Path(__file__).resolve().parents[2]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    triton_runs_here([torch.empty(0, device=DEVICE)]) is not None,
    reason=str(triton_runs_here([torch.empty(0, device=DEVICE)])),
)
F64 = torch.float64


def scan_inputs(b, length, d, n, seed=0, initial_state=True, skip=True):
    """Float64 leaves (u, delta, A, B, C, D, h0) of the reference's shapes; D, h0 may be None."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, length, d, generator=g, dtype=F64)
    delta = torch.nn.functional.softplus(torch.randn(b, length, d, generator=g, dtype=F64) - 1)
    A = -torch.exp(0.5 * torch.randn(d, n, generator=g, dtype=F64))
    B, C = (torch.randn(b, length, n, generator=g, dtype=F64) for _ in "BC")
    D = torch.randn(d, generator=g, dtype=F64) if skip else None
    h0 = torch.randn(b, d, n, generator=g, dtype=F64) if initial_state else None
    return [u, delta, A, B, C, D, h0]


def outputs_and_gradients(args, backend, weights, chunk_size, prepare=lambda args: args):
    """(y, final state, gradients of sum(weights * outputs) for every tensor argument). `prepare`
    maps the leaves to what the scan is given (views, casts), so the gradients are the leaves'."""
    leaves = [a.detach().clone().requires_grad_() if a is not None else None for a in args]
    y, final = selective_scan(*prepare(leaves), chunk_size=chunk_size, backend=backend)
    loss = (y.double() * weights[0]).sum() + (final.double() * weights[1]).sum()
    present = [x for x in leaves if x is not None]
    grads = iter(torch.autograd.grad(loss, present))
    return y.detach(), final.detach(), [next(grads) if x is not None else None for x in leaves]


def assert_matches_reference(args, chunk_size, dtype=torch.float32, prepare=lambda args: args):
    """The Triton scan in `dtype` on DEVICE against the float64 reference on the same (rounded)
    values: both outputs and every gradient, within the dtype's relative RMSE."""
    args = [a.to(dtype).to(F64) if a is not None else None for a in args]
    g = torch.Generator().manual_seed(1)
    b, length, d = args[0].shape
    weights = [torch.randn(b, length, d, generator=g, dtype=F64)]
    weights.append(torch.randn(b, d, args[2].shape[1], generator=g, dtype=F64))
    expected = outputs_and_gradients(args, "reference", weights, chunk_size, prepare)
    on_device = [a.to(DEVICE, dtype) if a is not None else None for a in args]
    device_weights = [w.to(DEVICE) for w in weights]
    got = outputs_and_gradients(on_device, "triton", device_weights, chunk_size, prepare)
    names = ["y", "final_state"] + [f"grad_{x}" for x in ("u", "delta", "A", "B", "C", "D", "h0")]
    flat_expected = [expected[0], expected[1], *expected[2]]
    flat_got = [got[0], got[1], *got[2]]
    assert got[0].dtype == got[1].dtype == dtype
    for name, value, reference in zip(names, flat_got, flat_expected):
        if reference is None:
            continue
        error = relative_rmse(value.cpu(), reference)
        assert error <= TOLERANCE[dtype], f"{name}: relative RMSE {error:.2e}"


def test_many_chunks_and_channel_blocks_in_one_sequence():
    # 37 steps in chunks of 8 (the last one short); 20 channels are two blocks of 16, the second
    # mostly padding lanes; N = 3 pads to 4.
    assert_matches_reference(scan_inputs(2, 37, 20, 3), chunk_size=8)


def test_initial_state_without_skip():
    assert_matches_reference(scan_inputs(2, 19, 6, 4, seed=2, skip=False), chunk_size=8)


def test_no_initial_state_and_chunk_longer_than_sequence():
    assert_matches_reference(scan_inputs(1, 11, 5, 4, seed=3, initial_state=False), chunk_size=64)


def test_non_contiguous_and_flipped_inputs():
    # What the mixers pass: the sequence flipped for the backward direction, B and C as slices of
    # one projection; here also u and delta as transposed views, A and h0 as transposes.
    def prepare(leaves):
        u, delta, A, B, C, D, h0 = leaves
        projection = torch.cat([B, C, B], dim=-1)  # (b, l, 3n), rows of stride 3n
        n = B.shape[-1]
        u_view = u.transpose(1, 2).contiguous().transpose(1, 2)  # strides (l d, 1, l)
        delta_view = delta.flip(1)
        A_view = A.t().contiguous().t()
        h0_view = h0.transpose(1, 2).contiguous().transpose(1, 2)
        return [u_view, delta_view, A_view, projection[..., :n], projection[..., n : 2 * n], D,
                h0_view]  # fmt: skip

    args = scan_inputs(2, 23, 7, 4, seed=4)
    args[0] = args[0].flip(1)
    # The views are built on the device from the cast leaves, so the kernels see the strides.
    assert not prepare([a.clone() for a in args])[0].is_contiguous()
    assert_matches_reference(args, chunk_size=8, prepare=prepare)


def test_bfloat16_inputs_and_mixed_dtypes():
    # bf16 activations with fp32 parameters, as under autocast: the outputs are fp32 (the
    # promoted dtype, as the reference), the gradients of each input in its own dtype.
    def mixed(leaves):
        u, delta, A, B, C, D, h0 = leaves
        return [x.to(torch.bfloat16) for x in (u, delta)] + [A] + [
            x.to(torch.bfloat16) for x in (B, C)
        ] + [D, h0]  # fmt: skip

    assert_matches_reference(scan_inputs(2, 21, 6, 4, seed=5), chunk_size=8, dtype=torch.bfloat16)
    args = [a.to(DEVICE, torch.float32) for a in scan_inputs(1, 9, 3, 2, seed=6)]
    y, final = selective_scan(*mixed(args), chunk_size=4, backend="triton")
    assert y.dtype == final.dtype == torch.float32
    expected = selective_scan(*[a.double() for a in mixed(args)], backend="reference")
    assert relative_rmse(y.cpu(), expected[0].cpu()) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("used", ["y", "final_state"])
def test_one_output_unused(used):
    # Autograd passes no gradient for the unused output (materialize_grads is off).
    args = scan_inputs(2, 13, 4, 3, seed=7)
    gradients = {}
    for backend, device, dtype in (("reference", "cpu", F64), ("triton", DEVICE, torch.float32)):
        leaves = [a.detach().to(device, dtype).requires_grad_() for a in args]
        y, final = selective_scan(*leaves, chunk_size=4, backend=backend)
        (y if used == "y" else final).pow(2).sum().backward()
        # (D reaches only y: the reference leaves its gradient None when y is unused.)
        gradients[backend] = [
            x.grad.cpu() if x.grad is not None else 0 * x.detach().cpu() for x in leaves
        ]
    for name, got, expected in zip("u delta A B C D h0".split(), *gradients.values()):
        error = relative_rmse(got, expected)
        assert error <= TOLERANCE[torch.float32], f"grad_{name}: relative RMSE {error:.2e}"


def test_no_grad_path_gives_the_same_outputs():
    args = [a.to(DEVICE, torch.float32) for a in scan_inputs(2, 17, 5, 3, seed=8)]
    with torch.no_grad():
        plain = selective_scan(*args, chunk_size=4, backend="triton")
    recorded = selective_scan(*[a.requires_grad_() for a in args], chunk_size=4, backend="triton")
    for a, b in zip(plain, recorded):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


def test_forward_keeps_no_per_step_state_for_backward():
    b, length, d, n = 2, 64, 8, 16
    args = [a.to(DEVICE, torch.float32).requires_grad_() for a in scan_inputs(b, length, d, n)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        selective_scan(*args, chunk_size=16, backend="triton")
    assert saved, "the Triton scan's autograd Function saved nothing"
    assert max(t.numel() for t in saved) < b * length * d * n
    # Inputs and the four chunk-entering states: not one (b, l, d, n) tensor's worth.
    assert sum(t.numel() for t in saved) < b * length * d * n // 2


def test_auto_prefers_triton_on_cuda():
    assert OP.candidates("auto", "cuda") == (["triton", "chunked"], False)


def test_mamba_mixer_on_the_triton_scan_matches_its_reference():
    # Bidirectional, with padding: the scan sees flipped sequences, B and C sliced out of x_proj,
    # and delta = 0 at padded positions.
    torch.manual_seed(0)
    mixer = Mamba(d_model=6, d_state=4, chunk_size=8).to(DEVICE)
    x = torch.randn(2, 19, 6, device=DEVICE)
    mask = torch.ones(2, 19, dtype=torch.bool, device=DEVICE)
    mask[1, 12:] = False
    with backend_override("triton"):
        out = mixer(x, mask)
    out.pow(2).sum().backward()
    grads = [p.grad.clone() for p in mixer.parameters()]
    mixer.zero_grad()
    expected = mixer.reference(x, mask)
    expected.pow(2).sum().backward()
    assert relative_rmse(out.detach().cpu(), expected.detach().cpu()) <= 1e-5
    for got, param in zip(grads, mixer.parameters()):
        assert relative_rmse(got.cpu(), param.grad.cpu()) <= 1e-4


# Compiles constexpr variants of both kernels for sm_90 (argv: input dtype, "every" or "corners"),
# the internal buffers in fp32 as the wrappers give them. No GPU is needed (Triton's own ptxas), but
# Triton must not be in interpreter mode, which is fixed when it is first imported: a subprocess.
COMPILE_VARIANTS = """
import itertools, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from models.ops.selective_scan import triton as kernels

dtype = sys.argv[1]
fp32_buffers = {"states_ptr", "scratch_ptr", "grad_h0_ptr"}
fp32_buffers |= {f"grad_{x}_part_ptr" for x in "ABCD"}

def compile_variant(kernel, constexprs):
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = "*" + ("fp32" if name in fp32_buffers else dtype)
        else:
            signature[name] = "i32"
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 1})
    assert compiled.asm["cubin"]

tiles = {"CHUNK": 64, "BLOCK_D": 16, "BLOCK_N": 16}
every = sys.argv[2] == "every"  # else only the all-on and all-off variants
for has_d, has_h0, store in itertools.product([True, False], repeat=3):
    if every or has_d == has_h0 == store:
        flags = {"HAS_D": has_d, "HAS_H0": has_h0, "STORE_STATES": store}
        compile_variant(kernels._scan_forward_kernel, {**tiles, **flags})
for has_d, has_grad_final in itertools.product([True, False], repeat=2):
    if every or has_d == has_grad_final:
        flags = {"HAS_D": has_d, "HAS_GRAD_FINAL": has_grad_final}
        compile_variant(kernels._scan_backward_kernel, {**tiles, **flags})
"""


def compile_for_hopper(dtype: str, variants: str, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    env["TRITON_CACHE_DIR"] = str(cache)  # compile, never read a cached binary
    done = subprocess.run(
        [sys.executable, "-c", COMPILE_VARIANTS, dtype, variants],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_kernels_compile_for_hopper(tmp_path):
    # The interpreter runs Python, not the compiler: it lets through what compiling refuses (a
    # loop-carried value whose dtype changes, say). bf16 inputs, flags all on and all off.
    compile_for_hopper("bf16", "corners", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_every_kernel_variant_compiles_for_hopper(dtype, tmp_path):
    compile_for_hopper(dtype, "every", tmp_path)
