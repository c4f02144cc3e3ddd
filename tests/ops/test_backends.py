"""Every backend of every op (models/ops) against the op's reference: outputs and the gradients
of every input, at awkward lengths, in float64 and float32, by relative RMSE. Triton backends run
in the interpreter on CPU (TRITON_INTERPRET=1, set by tests/conftest.py) and natively on CUDA,
where they are also checked in bfloat16; a compiled CPU backend runs where it builds. Select
with `pytest -k kernel`."""

from __future__ import annotations

import pytest
import torch

from models.ops import registered_ops
from tests.ops.cases import CASES
from tests.ops.compare import TOLERANCE, compare_to_reference

LENGTHS = (1, 63, 100, 257)
# At L = 1 S4's kernel is -C~ A^-1 B, independent of dt: its true dt-gradient is 0, and float32
# reaches it only as a cancellation of O(1/dt) terms. No model asks for a kernel of length 1.
SHORTEST = {"dplr_kernel": 2}
CUDA = torch.cuda.is_available()


def _params():
    for op_name, op in sorted(registered_ops().items()):
        for backend_name, backend in op.backends.items():
            if backend_name == "reference":
                continue
            for case in CASES[op_name]:
                for length in (n for n in LENGTHS if n >= SHORTEST.get(op_name, 1)):
                    dtypes = [torch.float64, torch.float32]
                    if backend.compiled and backend_name == "triton":
                        dtypes = [torch.float32] + ([torch.bfloat16] if CUDA else [])
                    for dtype in dtypes:
                        yield pytest.param(
                            op_name,
                            backend_name,
                            case,
                            length,
                            dtype,
                            id=f"kernel-{op_name}-{backend_name}-{case}-L{length}-{str(dtype)[6:]}",
                        )


@pytest.mark.parametrize("op_name, backend, case, length, dtype", list(_params()))
def test_backend_matches_reference(op_name, backend, case, length, dtype):
    op = registered_ops()[op_name]
    device = "cuda" if CUDA and op.backends[backend].name == "triton" else "cpu"
    reason = op.backends[backend].available([torch.empty(0, device=device)])
    if reason is not None:
        pytest.skip(reason)
    errors = compare_to_reference(op, op_name, case, backend, length, dtype, device)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE[dtype], f"{worst}: relative RMSE {errors[worst]:.2e}"


def test_every_op_has_cases_and_a_reference():
    for name, op in registered_ops().items():
        assert name in CASES, f"tests/ops/cases.py has no inputs for op {name}"
        assert "reference" in op.backends
        assert len(op.backends) >= 2, f"op {name} has no form besides its reference"
