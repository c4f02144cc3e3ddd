"""The Pathfinder position control (benchmarks/pathfinder_position_control.py): the control label
is what its docstring says, a sequence model learns it from pixels, and the script runs end to end
on generated images."""

import functools

import numpy as np
import torch

from benchmarks import pathfinder_position_control as control
from models.backbone import SequenceClassifier
from models.mixers.s4d import S4D


def test_the_control_label_compares_bright_pixels_of_the_first_and_second_half():
    dark, bright = 0, 200
    tokens = np.array(
        [
            [bright, bright, dark, dark, bright, dark, dark, dark],  # 2 above, 1 below -> 1
            [dark, bright, dark, dark, bright, bright, dark, dark],  # 1 above, 2 below -> 0
            [bright, dark, dark, dark, bright, dark, dark, dark],  # a tie -> 0
            [100, 100, 100, dark, dark, dark, dark, dark],  # 100 is not brighter than 100 -> 0
        ],
        dtype=np.uint8,
    )
    assert control.position_label(tokens).tolist() == [1, 0, 0, 0]


def test_a_small_s4d_learns_the_control_label_from_pixels():
    rng = np.random.default_rng(0)
    n, length = 640, 64
    tokens = np.where(rng.random((n, length)) < 0.2, 220, 0).astype(np.uint8)
    labels = control.position_label(tokens)
    data = torch.as_tensor(tokens.astype(np.int64))
    torch.manual_seed(0)
    model = SequenceClassifier(
        256,
        2,
        length,
        functools.partial(S4D, d_state=16),
        d_model=16,
        n_layers=1,
        d_ff=0,
        dropout=0.0,
        positions="none",
        pooling="mean",
        encoder="linear",
    )
    history = control.train_control(
        model,
        (data[:512], labels[:512]),
        (data[512:], labels[512:]),
        steps=150,
        eval_every=50,
        batch=32,
        lr=4e-3,
        weight_decay=0.0,
        seed=0,
        log=lambda line: None,
    )
    majority = max(labels[512:].float().mean().item(), 1 - labels[512:].float().mean().item())
    assert [step for step, _ in history] == [50, 100, 150]
    assert history[-1][1] > majority + 0.2, (history, majority)


def test_the_script_writes_its_table_for_a_run_of_generated_images(tmp_path, capsys):
    out = tmp_path / "control.md"
    control.main(
        [
            "profile=smoke",
            "model=s4d",
            f"data_root={tmp_path / 'data'}",
            "progress=false",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert "| 2 |" in text and "| 4 |" in text and "Test accuracy" in text
    assert "control label: test accuracy" in capsys.readouterr().out
