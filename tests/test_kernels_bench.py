"""The kernels benchmark runner (benchmarks/kernels/, `make kernels-bench`) on tiny lengths:
what it measures, what it skips and says why, its files, and its comparison of two runs."""

from __future__ import annotations

import json

import torch

from benchmarks.kernels import cases, flops, run
from models.ops import registered_ops


def test_every_op_has_a_benchmark_case_and_a_flop_formula():
    for name in registered_ops():
        assert name in cases.CASES, f"benchmarks/kernels/cases.py has no case for op {name}"
        assert callable(getattr(flops, name)), f"benchmarks/kernels/flops.py has no {name}"


def test_cases_build_at_both_sizes_with_gradients():
    for name in cases.CASES:
        inputs = cases.build(name, 8, torch.device("cpu"), None)
        leaves = [a for a in inputs.args if isinstance(a, torch.Tensor) and a.requires_grad]
        assert bool(leaves) != bool(cases.CASES[name].forward_only), f"{name}: gradients?"
        assert inputs.shape


def test_runner_measures_skips_and_compares(tmp_path, capsys):
    out = tmp_path / "a"
    run.main(
        ["--ops", "vandermonde", "--lengths", "16,32", "--reference-max-length", "16"]
        + ["--device", "cpu", "--repeats", "2", "--out", str(out), "--note", "test run"]
    )
    document = json.loads((out / "kernels.json").read_text())
    assert document["machine"]["note"] == "test run"
    assert document["machine"]["git_commit"]
    rows = {(r["name"], r["length"]): r for r in document["rows"]}
    assert rows[("chunked", 32)]["status"] == "ok"
    assert rows[("chunked", 32)]["fwd_ms"] > 0 and rows[("chunked", 32)]["fwd_bwd_ms"] > 0
    assert rows[("chunked", 32)]["tflops_fwd"] > 0
    assert rows[("chunked", 32)]["peak_mib"] > 0
    assert rows[("reference", 16)]["status"] == "ok"
    assert rows[("reference", 32)]["status"] == "skipped"
    assert "interpreter" in rows[("triton", 16)]["reason"]
    markdown = (out / "kernels.md").read_text()
    assert "## vandermonde" in markdown and "| chunked | 32 |" in markdown
    assert "triton, length 16, 32: skipped" in markdown

    compared = tmp_path / "compare.md"
    run.main(
        ["--compare", str(out / "kernels.json"), str(out / "kernels.json"), "--out", str(compared)]
    )
    assert "| vandermonde | chunked | 32 |" in compared.read_text()
    assert "1.00x / 1.00x" in capsys.readouterr().out
