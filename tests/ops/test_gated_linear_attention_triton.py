"""The Triton gated-linear-attention kernels on what tests/ops/test_backends.py does not cover:
decays strong enough to overflow a factorised form, many chunks, key and value widths over one
block, strided and time-flipped inputs, either output alone carrying the gradient, a decay
without gradient, and 16-bit and 64-bit inputs. On CPU the kernels run in the Triton
interpreter (tests/conftest.py), so shapes are small; that they also compile for the H200
(sm_90) is checked without a GPU, by Triton's compiler and ptxas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.ops.dispatch import backend_override
from models.ops.gated_linear_attention import gated_attention
from models.ops.gated_linear_attention.reference import gated_attention_reference
from tests.ops.compare import relative_rmse

triton_kernels = pytest.importorskip("models.ops.gated_linear_attention.triton")
REPO = Path(__file__).resolve().parents[2]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
F64 = torch.float64


def _inputs(b, h, length, kw, vw, decay, bonus, initial, generator, decay_scale=0.25):
    """float64 leaves: q, k, v, log_decay or None, bonus or None, initial state or None."""

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=F64)

    q, k, v = randn(b, h, length, kw), randn(b, h, length, kw), randn(b, h, length, vw)
    log_decay = F.logsigmoid(randn(b, h, length, kw)) * decay_scale if decay else None
    u = randn(h, kw) if bonus else None
    s0 = randn(b, h, kw, vw) if initial else None
    return [q, k, v, log_decay, u, s0]


def _errors(args, use=(True, True), dtype=torch.float32, prepare=None, frozen=(), **options):
    """Relative RMSE of the Triton outputs and every input gradient against the float64
    reference, for the loss sum(w_o * o) + sum(w_s * final_state) over the outputs in `use`.
    prepare(tensor) builds the kernel's view of each input (default: a cast copy); the inputs
    at the indices in `frozen` take no gradient."""
    args = [a if i not in frozen or a is None else a.detach() for i, a in enumerate(args)]
    leaves = [
        None if a is None else a.clone().requires_grad_(i not in frozen) for i, a in enumerate(args)
    ]
    reference = gated_attention_reference(*leaves)
    generator = torch.Generator().manual_seed(5)
    weights = [torch.randn(r.shape, generator=generator, dtype=F64) for r in reference]
    loss = sum(w.mul(r).sum() for w, r, used in zip(weights, reference, use) if used)
    reference_grads = _grads(loss, [a for a in leaves if a is not None and a.requires_grad])

    prepare = prepare or (lambda x: x.to(DEVICE, dtype))
    mine = [
        None if a is None else a.detach().clone().requires_grad_(i not in frozen)
        for i, a in enumerate(args)
    ]
    inputs = [None if a is None else prepare(a) for a in mine]
    outputs = triton_kernels.gated_linear_attention_triton(*inputs, **options)
    assert all(o.dtype == inputs[0].dtype for o in outputs)
    loss = sum(
        w.to(DEVICE).mul(o.double()).sum() for w, o, used in zip(weights, outputs, use) if used
    )
    grads = _grads(loss, [a for a in mine if a is not None and a.requires_grad])
    errors = {
        f"output{i}": relative_rmse(o.detach().cpu(), r.detach())
        for i, (o, r) in enumerate(zip(outputs, reference))
    }
    for index, (g, r) in enumerate(zip(grads, reference_grads)):
        assert torch.isfinite(g).all(), f"grad{index} is not finite"
        errors[f"grad{index}"] = relative_rmse(g.cpu(), r)
    return errors


def _grads(loss, leaves):
    """d loss / d leaf for each leaf; zero for a leaf the loss does not reach (q, when only the
    final state is used)."""
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def _assert_small(errors, tolerance=1e-4):
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, f"{worst}: relative RMSE {errors[worst]:.2e} ({errors})"


@pytest.mark.parametrize("with_bonus", [False, True], ids=["gla", "rwkv6"])
def test_decays_that_overflow_a_factorised_form_stay_finite_and_exact(with_bonus):
    # exp(+-50 * 64) is far outside float32 (and float64): only log-space pair decays and
    # factors split at band boundaries stay finite. 80 steps: two chunks, five bands.
    g = torch.Generator().manual_seed(0)
    q, k, v, _, u, s0 = _inputs(1, 2, 80, 4, 3, False, with_bonus, True, g)
    log_decay = torch.full(q.shape, -50.0, dtype=F64)
    o, state = triton_kernels.gated_linear_attention_triton(
        *(None if x is None else x.to(DEVICE, torch.float32) for x in (q, k, v, log_decay, u, s0))
    )
    o, state = o.cpu(), state.cpu()
    assert torch.isfinite(o).all() and torch.isfinite(state).all()
    # Such a decay forgets everything but the current token (GLA), or (RWKV-6, whose query sees
    # the state before the current decay) the bonus-weighted current token and the previous one.
    if u is None:
        expected = (q * k).sum(-1, keepdim=True) * v
    else:
        expected = (q * u[None, :, None] * k).sum(-1, keepdim=True) * v
        expected[:, :, 1:] += (q[:, :, 1:] * k[:, :, :-1]).sum(-1, keepdim=True) * v[:, :, :-1]
        expected[:, :, :1] += torch.einsum("bhtk,bhkv->bhtv", q[:, :, :1], s0)
    torch.testing.assert_close(o.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.double(), k[:, :, -1, :, None] * v[:, :, -1, None, :])
    # ... and its gradients, decay included, against the reference.
    _assert_small(_errors([q, k, v, log_decay, u, s0]))


def test_many_chunks_of_sixteen():
    # 100 steps in chunks of 16: seven chunks, the last one partial, for each case.
    g = torch.Generator().manual_seed(1)
    _assert_small(_errors(_inputs(1, 2, 100, 5, 6, True, False, True, g), kernel_chunk=16))
    _assert_small(_errors(_inputs(1, 1, 100, 5, 6, True, True, False, g), kernel_chunk=16))
    _assert_small(_errors(_inputs(1, 1, 100, 5, 6, False, False, True, g), kernel_chunk=16))


@pytest.mark.parametrize("with_bonus", [False, True], ids=["gla", "rwkv6"])
def test_widths_over_one_block(with_bonus):
    # K = 70, V = 67: two key and value blocks in the chunk kernels, three in the walks, five
    # key slices in the band kernels.
    g = torch.Generator().manual_seed(2)
    _assert_small(_errors(_inputs(1, 1, 40, 70, 67, True, with_bonus, True, g)))


def test_strided_inputs():
    # Slices of a fused projection in a (b, l, h, width) layout, seen as (b, h, l, width):
    # strided in every dimension but the last.
    g = torch.Generator().manual_seed(3)
    args = _inputs(2, 3, 37, 5, 6, True, True, True, g)

    def strided(tensor):
        if tensor.dim() < 4:
            return tensor.to(DEVICE, torch.float32)
        fused = F.pad(tensor.transpose(1, 2).to(DEVICE, torch.float32), (0, 3))
        seen = fused[..., : tensor.shape[-1]].transpose(1, 2)
        assert not seen.is_contiguous()
        return seen

    _assert_small(_errors(args, prepare=strided))


@pytest.mark.parametrize("with_bonus", [False, True], ids=["gla", "rwkv6"])
def test_bidirectional_pass_over_time_flipped_inputs(with_bonus):
    # gated_attention's backward pass runs the op on time-flipped inputs.
    g = torch.Generator().manual_seed(9)
    q, k, v, log_decay, u, _ = _inputs(1, 2, 45, 5, 6, True, with_bonus, False, g)
    results = {}
    for backend, dtype in (("reference", F64), ("triton", torch.float32)):
        leaves = [
            None if x is None else x.clone().requires_grad_() for x in (q, k, v, log_decay, u)
        ]
        inputs = [None if x is None else x.to(DEVICE, dtype) for x in leaves]
        with backend_override(backend):
            o = gated_attention(*inputs, bidirectional=True)
        weights = torch.randn(o.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
        grads = torch.autograd.grad(
            (o.double() * weights.to(DEVICE)).sum(), [x for x in leaves if x is not None]
        )
        results[backend] = [o.detach().cpu(), *grads]
    errors = {
        f"value{i}": relative_rmse(mine, reference)
        for i, (mine, reference) in enumerate(zip(results["triton"], results["reference"]))
    }
    _assert_small(errors)


@pytest.mark.parametrize("use", [(True, False), (False, True)], ids=["output", "final_state"])
def test_either_output_alone_carries_the_gradient(use):
    # Autograd passes None for the unused output's gradient; the kernels take that as zero.
    g = torch.Generator().manual_seed(4)
    _assert_small(_errors(_inputs(2, 2, 70, 5, 6, True, False, True, g), use=use))


def test_fixed_decay_takes_no_gradient():
    # A decay that needs no gradient (RetNet's) skips the decay-gradient kernel.
    g = torch.Generator().manual_seed(10)
    _assert_small(_errors(_inputs(1, 2, 70, 5, 6, True, False, True, g), frozen=(3,)))


def test_final_state_without_initial_state_or_decay():
    g = torch.Generator().manual_seed(6)
    _assert_small(_errors(_inputs(2, 2, 70, 5, 6, False, True, False, g)))


def test_bfloat16_inputs_are_upcast():
    g = torch.Generator().manual_seed(7)
    args = _inputs(1, 2, 40, 5, 6, True, True, True, g)
    _assert_small(_errors(args, dtype=torch.bfloat16), tolerance=3e-2)


def test_float64_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(8)
    args = _inputs(1, 2, 40, 5, 6, True, False, True, g)
    _assert_small(_errors(args, dtype=F64))


def test_refuses_shapes_it_cannot_take():
    q = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match="bonus"):
        triton_kernels.gated_linear_attention_triton(q, q, q, None, torch.randn(3, 4))
    with pytest.raises(ValueError, match="kernel_chunk"):
        triton_kernels.gated_linear_attention_triton(q, q, q, None, kernel_chunk=128)


# Compiles every kernel for sm_90 as the wrapper launches it for K = V = 64 (outside the
# interpreter, in a subprocess); argv: the inputs' dtype, "corners" (every flag on, every flag
# off) or "every" (each flag alone too).
COMPILE = """
import itertools, sys
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from models.ops.gated_linear_attention import triton as op
from models.ops.gated_linear_attention import triton_backward as bwd, triton_forward as fwd

dtype, which = sys.argv[1], sys.argv[2]
FLOAT32 = {"cumulative", "query_cumulative", "scores", "states", "dstates", "dscores",
           "decay_terms", "bonus_terms", "bonus_grad_parts"}
dot = {"bf16": tl.bfloat16, "fp16": tl.float16, "fp32": tl.float32}[dtype]
products = {"DOT": dot, "PRECISION": "tf32x3" if dtype == "fp32" else "tf32"}
chunk = {"K": 64, "V": 64, "BT": 64, "BK": 64, "BV": 64}
walk = {**chunk, "BK": 32, "BV": 32}
band = {**chunk, "BC": op.BAND, "BK": op.BAND_K}
scores = {"K": 64, "BT": 64, "BC": op.BAND, "BK": op.BAND_K, "PRECISION": products["PRECISION"]}

def build(kernel, constexprs, warps):
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in ("L", "H", "NT"):
            signature[name] = "i32"
        else:
            signature[name] = "*" + ("fp32" if name in FLOAT32 else dtype)
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    target = GPUTarget("cuda", 90, 32)
    assert triton.compile(source, target=target, options={"num_warps": warps}).asm["cubin"]

def flags(*names):
    for values in itertools.product([True, False], repeat=len(names)):
        if which == "every" or len(set(values)) == 1:
            yield dict(zip(names, values))

for f in flags("EXCLUSIVE"):
    build(fwd.chunk_cumulative_decay_kernel, {"K": 64, "BT": 64, "BK": 64, **f}, 4)
for f in flags("HAS_DECAY", "HAS_INITIAL"):
    build(fwd.chunk_states_kernel, {**walk, **f, **products}, op.WIDE)
for f in flags("HAS_DECAY", "HAS_BONUS"):
    build(fwd.intra_chunk_scores_kernel, {**scores, **f}, 4)
for f in flags("HAS_DECAY"):
    build(fwd.chunk_output_kernel, {**chunk, **f, **products}, op.WIDE)
for f in flags("HAS_DECAY", "HAS_FINAL_GRAD", "HAS_INITIAL"):
    build(bwd.chunk_state_gradients_kernel, {**walk, **f, **products}, op.WIDE)
build(bwd.intra_chunk_score_gradients_kernel, {"V": 64, "BT": 64, "BV": 64, **products}, op.WIDE)
for f in flags("HAS_DECAY"):
    build(bwd.chunk_value_gradients_kernel, {**chunk, **f, **products}, op.WIDE)
for f in flags("HAS_DECAY", "HAS_BONUS", "DECAY_GRAD"):
    if f["DECAY_GRAD"] and not f["HAS_DECAY"]:
        continue
    build(bwd.chunk_query_key_gradients_kernel, {**band, **f, **products}, op.WIDE)
for f in flags("HAS_BONUS"):
    build(bwd.chunk_decay_gradients_kernel, {**chunk, **f}, op.WIDE)
"""


def _compile_for_hopper(dtype: str, which: str, cache: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    env["TRITON_CACHE_DIR"] = str(cache)  # compile, never reuse a cached binary
    done = subprocess.run(
        [sys.executable, "-c", COMPILE, dtype, which],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_kernels_compile_for_hopper(tmp_path):
    # The interpreter runs Python, not the compiler: it lets through what compiling refuses
    # (a loop-carried value whose dtype changes, a layout the 3-d band tiles cannot take).
    _compile_for_hopper("bf16", "corners", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_every_kernel_variant_compiles_for_hopper(dtype, tmp_path):
    _compile_for_hopper(dtype, "every", tmp_path)
