"""The layers import one way: the harness (lra_bench) may import tasks and models; tasks and
models never import the harness, and mixers never hold an op's math (they import models.ops)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["tasks", "models"])
def test_no_import_runs_back_up_to_the_harness(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "lra_bench"
        )
        for path in (REPO / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_models_do_not_import_tasks():
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "models").rglob("*.py")
        if any(m.split(".")[0] == "tasks" for m in imported_modules(path))
    ]
    assert offenders == []


def test_mixers_folder_holds_only_mixers():
    """Every module of models/mixers is the mixer of some conf/model config; shared pieces live
    in models/layers, models/ssm or models/ops."""
    from tests.conftest import compose_config, names_in

    targets = {
        compose_config([f"model={m}"]).model.backbone.mixer._target_.rsplit(".", 1)[0]
        for m in names_in("model")
    }
    modules = {
        f"models.mixers.{path.stem}"
        for path in (REPO / "models" / "mixers").glob("*.py")
        if path.name != "__init__.py"
    }
    assert modules - targets == set()
