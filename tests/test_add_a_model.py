"""The README's recipe for adding a model, done as written: its mixer file and config (taken
from the README's `<!-- recipe: PATH -->` blocks) go into a temporary copy of the repository,
then a smoke run gives a leaderboard row and a tiny speed measurement a speed row."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types

import pytest
import torch

from lra_bench.leaderboard import read_leaderboard
from lra_bench.speed.runner import read_speed_csv
from tests.conftest import REPO

RECIPE = re.compile(r"<!-- recipe: (\S+) -->\s*```\w*\n(.*?)```", re.S)
COPIED = ("lra_bench", "tasks", "models", "conf", "scripts")
MODEL = "gated_conv"


def recipe() -> dict[str, str]:
    """{path: text} of the README's recipe blocks."""
    return dict(RECIPE.findall((REPO / "README.md").read_text()))


def test_the_readme_gives_one_mixer_file_and_one_config():
    assert sorted(recipe()) == [f"conf/model/{MODEL}.yaml", f"models/mixers/{MODEL}.py"]


def test_the_recipe_mixer_keeps_padding_out_and_looks_only_back():
    module = types.ModuleType("recipe_mixer")
    exec(recipe()[f"models/mixers/{MODEL}.py"], module.__dict__)
    mixer = module.GatedConv(d_model=8, kernel_size=3).eval()
    x = torch.randn(2, 10, 8)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 6])[:, None]
    x = x * mask[..., None]
    with torch.no_grad():
        batched = mixer(x, mask)
        alone = mixer(x[1:, :6], mask[1:, :6])
    torch.testing.assert_close(batched[1, :6], alone[0])
    assert batched[1, 6:].abs().max() == 0
    x.requires_grad_(True)
    mixer(x, mask)[0, 4].sum().backward()
    assert x.grad[0, 5:].abs().max() == 0 and x.grad[0, 2:5].abs().min() > 0


def run(command: list[str], cwd, timeout: float = 600) -> str:
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_a_new_model_from_the_readme_gives_a_leaderboard_row_and_a_speed_row(tmp_path):
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    for path, text in recipe().items():
        (copy / path).write_text(text)
    results = tmp_path / "results"
    run(
        [
            "-m",
            "lra_bench.run",
            f"model={MODEL}",
            "profile=smoke",
            f"results_dir={results}",
            f"data_root={tmp_path / 'data'}",
            "progress=false",
        ],
        copy,
    )
    board = read_leaderboard(results / "leaderboard.csv")
    (row,) = board[board.model == MODEL].itertuples()
    assert (row.task, row.profile, row.protocol, row.seeds, row.failed) == (
        "listops",
        "smoke",
        "scratch",
        1,
        0,
    )
    assert 0 <= row.test_acc_mean <= 100 and row.parameters > 0
    assert (results / "leaderboard.html").exists()
    run(
        [
            "-m",
            "lra_bench.cli",
            "speed",
            "--models",
            MODEL,
            "--lengths",
            "64",
            "--size",
            "tiny",
            "--batch",
            "2",
            "--warmup",
            "1",
            "--steps",
            "1",
            "--threads",
            "1",
            "--matmul-size",
            "0",
            "--no-flops",
            "--out",
            str(results),
        ],
        copy,
    )
    speed = read_speed_csv(results / "speed_memory.csv")
    (measured,) = speed[speed.model == MODEL].itertuples()
    assert (measured.length, measured.status) == (64, "ok")
    assert measured.steps_per_sec > 0 and measured.params > 0
