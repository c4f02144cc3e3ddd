"""The Pathfinder position control (benchmarks/pathfinder_position_control.py): the control label
is what its docstring says, a sequence model learns it from pixels, and the script runs end to end
on generated images."""

import functools

import numpy as np
import torch

from benchmarks import pathfinder_position_control as control_module
from lra_bench.engine import TrainerConfig
from models.backbone import SequenceClassifier
from models.mixers.s4d import S4D
from tasks.base import Split, TaskData


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
    assert control_module.position_label(tokens).tolist() == [1, 0, 0, 0]


def test_a_small_s4d_learns_the_control_label_from_pixels_through_the_engine():
    rng = np.random.default_rng(0)
    n, length = 640, 64
    tokens = np.where(rng.random((n, length)) < 0.2, 220, 0).astype(np.uint8)
    pathfinder_labels = rng.integers(0, 2, n)  # what the control must not read
    splits = {
        name: Split(
            tokens[rows], np.full(len(tokens[rows]), length, np.int32), pathfinder_labels[rows]
        )
        for name, rows in (
            ("train", slice(0, 512)),
            ("val", slice(512, 576)),
            ("test", slice(576, n)),
        )
    }
    data = TaskData("pathfinder", splits, 256, 2, length, "f", intensities=True)
    control = control_module.relabelled(data)
    for name, split in control.splits.items():
        assert split.labels.tolist() == control_module.position_label(splits[name].tokens).tolist()
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
    # Constant rate, as a short control needs; the run's own schedule is what main() passes.
    trainer = TrainerConfig(
        batch_size=32, max_steps=150, eval_every=50, lr=4e-3, schedule="constant"
    )
    result = control_module.train_control(model, control, trainer, seed=0, log=lambda line: None)
    majority = control.splits["test"].majority_rate()
    assert [entry["step"] for entry in result.history] == [50, 100, 150]
    assert result.test_accuracy > majority + 0.2, (result.history, majority)


def test_the_script_writes_its_table_for_a_run_of_generated_images(tmp_path, capsys):
    out = tmp_path / "control.md"
    control_module.main(
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
