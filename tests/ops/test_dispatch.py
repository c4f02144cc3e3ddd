"""How an op picks its backend: settings checked by name, a compiled backend that fails raises
with its reason or (fallback=warn) warns once and records what ran instead, an optional one is
passed over with one line, overrides and reports."""

from __future__ import annotations

import pytest
import torch

from models.ops import dispatch
from models.ops.dispatch import Backend, BackendUnavailable, KernelOp

HERE = "tests.ops.fake_backends"


@pytest.fixture(autouse=True)
def _default_settings():
    dispatch.configure()
    yield
    dispatch.configure()


def make_op(**auto) -> KernelOp:
    return KernelOp(
        "fake",
        [
            Backend("reference", f"{HERE}:double_slowly"),
            Backend("chunked", f"{HERE}:double"),
            Backend("triton", f"{HERE}:broken", compiled=True),
            Backend("cpu", f"{HERE}:cannot_build", compiled=True, optional=True),
            Backend("absent", "no_such_module_anywhere:f", compiled=True),
        ],
        auto=auto or {"cpu": ("chunked",)},
        register=False,
    )


def test_auto_runs_the_devices_first_choice_and_reports_it():
    op = make_op()
    assert torch.equal(op(torch.ones(3)), torch.full((3,), 2.0))
    assert op.ran == {"chunked": 1}


def test_options_a_form_does_not_take_are_not_passed_to_it():
    op = make_op()
    op(torch.ones(2), backend="chunked", chunk_size=4)  # double() takes no chunk_size
    op(torch.ones(2), backend="reference", chunk_size=4)
    assert op.ran == {"chunked": 1, "reference": 1}


def test_a_failing_compiled_backend_asked_for_by_name_raises_with_its_reason(capsys):
    op = make_op()
    with pytest.raises(RuntimeError, match="PTX assembly failed"):
        op(torch.ones(2), backend="triton")
    with pytest.raises(BackendUnavailable, match="op fake, backend absent: cannot import"):
        op(torch.ones(2), backend="absent")
    assert op.ran == {}
    assert capsys.readouterr().err == ""  # nothing ran instead, so nothing to warn about


def test_fallback_warn_warns_once_and_records_the_path_that_ran(capsys):
    dispatch.configure(fallback="warn")
    op = make_op()
    for _ in range(3):
        assert torch.equal(op(torch.ones(2), backend="triton"), torch.full((2,), 2.0))
    err = capsys.readouterr().err
    assert err.count("kernels: fake: triton backend unavailable or failed") == 1
    assert "PTX assembly failed" in err and "using chunked" in err
    (label,) = op.ran
    assert label.startswith("chunked (fallback from triton: RuntimeError: PTX assembly failed")
    assert op.ran[label] == 3


def test_auto_on_cuda_does_not_fall_back_silently_from_triton():
    op = make_op(cuda=("triton", "chunked"), cpu=("chunked",))
    op.auto["cpu"] = ("triton", "chunked")  # pretend this device's first choice is Triton
    with pytest.raises(RuntimeError, match="PTX assembly failed"):
        op(torch.ones(2))


def test_an_optional_compiled_backend_is_passed_over_by_auto_with_one_line(capsys):
    op = make_op(cpu=("cpu", "chunked"))
    op(torch.ones(2))
    op(torch.ones(2))
    err = capsys.readouterr().err
    assert err.count("fake: cpu backend unavailable or failed (no C++ compiler found") == 1
    (label,) = op.ran
    assert label.startswith("chunked (fallback from cpu:") and op.ran[label] == 2


def test_an_optional_backend_asked_for_by_name_still_raises():
    op = make_op(cpu=("cpu", "chunked"))
    with pytest.raises(BackendUnavailable, match="backend cpu"):
        op(torch.ones(2), backend="cpu")


def test_override_wins_over_the_settings_and_the_callers_choice():
    op = make_op()
    with dispatch.backend_override("reference"):
        op(torch.ones(2), backend="chunked")
    assert op.ran == {"reference": 1}


def test_settings_are_checked_by_name():
    with pytest.raises(ValueError, match="kernels.fallback='sometimes'"):
        dispatch.configure(fallback="sometimes")
    with pytest.raises(ValueError, match="kernels.backend='cuda_graphs'"):
        dispatch.configure(backend="cuda_graphs")
    with pytest.raises(ValueError, match="kernels.per_op.nosuch: no such op"):
        dispatch.configure(per_op={"nosuch": "chunked"})
    with pytest.raises(ValueError, match="kernels.per_op.ssd='cauchy'"):
        dispatch.configure(per_op={"ssd": "cauchy"})


def test_per_op_setting_and_report():
    dispatch.configure(per_op={"fft_conv": "reference"})
    from models.ops.fft_conv import long_conv

    long_conv(torch.randn(1, 2, 5), torch.randn(2, 5))
    assert dispatch.report(["fft_conv"]) == {"fft_conv": "reference"}
    dispatch.reset_report()
    assert dispatch.report(["fft_conv"]) == {}
