"""Running one backend of an op and its reference on the same inputs, and the error measure the
kernel tests use: relative RMSE, ||a - b|| / ||b|| over all elements (scale-aware, as in
flash-linear-attention's tests), for the outputs and for the gradient of every input."""

from __future__ import annotations

import torch

from tests.ops.cases import CASES, query_weights

# Largest relative RMSE accepted against the float64 reference, by the dtype the backend ran in.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 3e-2}
ZERO_SCALE = 1e-2  # RMS below which a reference counts as zero (inputs and outputs are O(1))


def relative_rmse(value: torch.Tensor, reference: torch.Tensor) -> float:
    # A comparison of values only: detached, so that a tensor that needs grad gives a float
    # without autograd's warning.
    value, reference = (torch.view_as_real(t) if t.is_complex() else t for t in (value, reference))
    value, reference = value.detach(), reference.detach()
    error = (value.double() - reference.double()).pow(2).mean().sqrt()
    # A quantity whose true value is 0 (S4's kernel at L = 1 does not depend on dt) is measured
    # at unit scale: the reference's own round-off there would make any relative error huge.
    scale = reference.double().pow(2).mean().sqrt().clamp(min=ZERO_SCALE)
    return float(error / scale)


def _outputs(result) -> list[torch.Tensor]:
    return [t for t in (result if isinstance(result, tuple) else (result,)) if t is not None]


def _leaves(args: tuple) -> list[torch.Tensor]:
    return [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]


def _cast(args: tuple, dtype: torch.dtype) -> tuple:
    """The same inputs in another precision, as fresh leaves (complex follows the real dtype)."""
    complex_of = {torch.float64: torch.complex128}
    out = []
    for a in args:
        if isinstance(a, torch.Tensor) and (a.is_floating_point() or a.is_complex()):
            target = complex_of.get(dtype, torch.complex64) if a.is_complex() else dtype
            out.append(a.detach().to(target).requires_grad_(a.requires_grad))
        else:
            out.append(a)
    return tuple(out)


def run_with_gradients(op, args: tuple, options: dict, backend: str, weights: list | None):
    """(outputs, gradients of sum(weights * outputs) w.r.t. every leaf, weights used)."""
    outputs = _outputs(op(*args, backend=backend, **options))
    if weights is None:
        generator = torch.Generator().manual_seed(1)
        weights = [
            torch.randn(
                torch.view_as_real(o).shape if o.is_complex() else o.shape,
                generator=generator,
                dtype=torch.float64,
            )
            for o in outputs
        ]
    loss = sum(
        ((torch.view_as_real(o) if o.is_complex() else o).double() * w).sum()
        for o, w in zip(outputs, weights)
    )
    leaves = _leaves(args)
    if not leaves:  # an op of integer inputs (lsh_bias): outputs only
        return [o.detach() for o in outputs], [], weights
    gradients = torch.autograd.grad(loss, leaves, allow_unused=True)
    gradients = [torch.zeros_like(x) if gr is None else gr for x, gr in zip(leaves, gradients)]
    return [o.detach() for o in outputs], gradients, weights


def compare_to_reference(
    op, op_name: str, case: str, backend: str, length: int, dtype: torch.dtype, device="cpu"
) -> dict[str, float]:
    """{output or gradient name: relative RMSE of `backend` in `dtype` against the float64
    reference}, on the inputs of CASES[op_name][case]."""
    generator = torch.Generator().manual_seed(length)
    args, options = CASES[op_name][case](length, torch.float64, generator)
    query = query_weights(op_name, args)
    reference_args = _cast(args, torch.float64)
    outputs, gradients, weights = None, None, None
    # The reference's outputs fix the loss weights; padded attention queries weigh nothing.
    ref_out = _outputs(op(*reference_args, backend="reference", **options))
    generator_w = torch.Generator().manual_seed(1)
    weights = []
    for index, o in enumerate(ref_out):
        shape = torch.view_as_real(o).shape if o.is_complex() else o.shape
        w = torch.randn(shape, generator=generator_w, dtype=torch.float64)
        if query is not None and index == 0:
            w = w * query.double()
        weights.append(w)
    ref_out, ref_grads, _ = run_with_gradients(op, reference_args, options, "reference", weights)
    test_args = _cast(args, dtype)
    test_args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in test_args)
    device_weights = [w.to(device) for w in weights]
    outputs, gradients, _ = run_with_gradients(op, test_args, options, backend, device_weights)
    errors = {}
    for index, (value, reference) in enumerate(zip(outputs, ref_out)):
        if query is not None and index == 0:
            value, reference = value.cpu() * query, reference * query
        errors[f"output{index}"] = relative_rmse(value.cpu(), reference)
    for index, (value, reference) in enumerate(zip(gradients, ref_grads)):
        errors[f"grad{index}"] = relative_rmse(value.cpu(), reference)
    return errors


def outputs_and_grads(op, backend, inputs, wanted, **options):
    """op(*inputs, backend=...) -> (y, state): y, state and the gradients of the inputs marked
    in `wanted`, of sum(y * r) + sum(state * r') for fixed random r, r' (float64)."""
    leaves = [x.detach().clone().requires_grad_(want) for x, want in zip(inputs, wanted)]
    y, state = op(*leaves, backend=backend, **options)
    g = torch.Generator().manual_seed(1)
    loss = (y.double() * torch.randn(y.shape, generator=g, dtype=torch.float64)).sum()
    loss = (
        loss + (state.double() * torch.randn(state.shape, generator=g, dtype=torch.float64)).sum()
    )
    grads = torch.autograd.grad(loss, [x for x in leaves if x.requires_grad])
    return [y.detach(), state.detach(), *grads]


def assert_close(values, expected, tolerance):
    """Every value within `tolerance` of its expected one, by relative Frobenius error."""
    for index, (value, reference) in enumerate(zip(values, expected)):
        error = (value.double() - reference).norm() / reference.norm().clamp(min=1e-12)
        assert error < tolerance, f"output/gradient {index}: relative error {error:.2e}"
