"""The attention kernels compiled for a Hopper GPU (sm_90) on a machine without one: Triton's
NVIDIA backend and its bundled ptxas build them as a launch on an H100 / H200 would (in a
subprocess, as the tests' TRITON_INTERPRET=1 turns every kernel into an interpreted one), so
mistakes the interpreter forgives (a non-constexpr global, a bad layout) show here, and ptxas
reports what the tile shapes of `tile_sizes` cost in registers. Slow (a few seconds to a minute
per kernel): `make test-slow`.

Checked for bf16 at head dims 64 and 128, every pattern kind, causal or not: the kernel
compiles, its key and query loops are software-pipelined (asynchronous copies to shared
memory), and it spills no register, as `tile_sizes` promises.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

from models.ops.attention import triton_kernels as kernels  # noqa: E402
from models.ops.attention.triton import tile_sizes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
FLOAT_ARGS = {"scale", "sm_scale", "dropout_p", "keep_scale"}
FLOAT32_POINTERS = {"LSE", "DELTA", "KEY_BIAS"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(PTXAS), reason="triton without its NVIDIA backend"),
]


def _signature(fn, constants: dict) -> tuple[dict, dict]:
    """Argument types as a launch with bf16 tensors gives them, and the divisibility by 16
    that Triton specialises on for pointers and strides (true of the usual shapes)."""
    signature, attrs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in constants:
            signature[name] = "constexpr"
        elif name.isupper():
            signature[name] = "*fp32" if name in FLOAT32_POINTERS else "*bf16"
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in FLOAT_ARGS:
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
            if name.startswith("stride"):
                attrs[(index,)] = [["tt.divisibility", 16]]
    return signature, attrs


def _spilled_bytes(ptx: str) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as file:
        file.write(ptx)
    try:
        report = subprocess.run(
            [PTXAS, "-v", "--gpu-name", "sm_90a", file.name, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    finally:
        os.unlink(file.name)
    return sum(int(n) for n in re.findall(r"(\d+) bytes spill stores", report))


def _compile(kernel: str, causal: bool, kind: int, head_dim: int, dropout: bool) -> dict:
    """Compiles one kernel with the launch shapes of `tile_sizes` -> {"pipelined": whether
    its loops copy asynchronously to shared memory, "spilled": ptxas's spill bytes}. Must run
    where TRITON_INTERPRET is unset (see `_compiled`)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    tiles = tile_sizes(head_dim, torch.bfloat16, interpreted=False)
    fn, (block_m, block_n), index = {
        "forward": (kernels.attention_forward_kernel, tiles.forward, 0),
        "key_grads": (kernels.attention_backward_key_kernel, tiles.key_grads[::-1], 1),
        "query_grads": (kernels.attention_backward_query_kernel, tiles.query_grads, 2),
    }[kernel]
    constants = dict(
        E=head_dim, EV=head_dim, BLOCK_E=head_dim, BLOCK_EV=head_dim, BLOCK_M=block_m,
        BLOCK_N=block_n, KIND=kind, CAUSAL=causal, DROPOUT=dropout, UPCAST=False,
        PRECISION="tf32",
    )  # fmt: skip
    signature, attrs = _signature(fn, constants)
    compiled = triton.compile(
        ASTSource(fn, signature, constants, attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": tiles.warps[index], "num_stages": tiles.stages[index]},
    )
    return {
        "pipelined": "async_copy_global_to_local" in compiled.asm["ttgir"],
        "spilled": _spilled_bytes(compiled.asm["ptx"]),
    }


def _compiled(*args) -> dict:
    """`_compile(*args)` in a fresh Python without TRITON_INTERPRET."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    code = (
        "import json, sys; from tests.ops.test_attention_triton_sm90 import _compile; "
        "print(json.dumps(_compile(*json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


KERNELS = ["forward", "key_grads", "query_grads"]


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("kind", [0, 1, 2], ids=["full", "window", "blocks"])
@pytest.mark.parametrize("causal", [False, True], ids=["both_ways", "causal"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_compiles_for_sm90_pipelined_without_spills(kernel, causal, kind, head_dim):
    result = _compiled(kernel, causal, kind, head_dim, False)
    assert result == {"pipelined": True, "spilled": 0}


@pytest.mark.parametrize("kernel", KERNELS)
def test_dropout_kernels_compile_for_sm90_without_spills(kernel):
    result = _compiled(kernel, False, 1, 64, True)
    assert result == {"pipelined": True, "spilled": 0}
