"""The Pathfinder learnability check (benchmarks/pathfinder_cnn_check.py): pixels reach the CNN
in the sequence models' row-major order, and the CNN does learn a label that follows from them."""

import numpy as np
import pytest
import torch

from benchmarks import pathfinder_cnn_check as check


def test_tokens_become_row_major_images_in_unit_range():
    tokens = np.arange(16, dtype=np.uint8).reshape(1, 16) * 17  # 0, 17, ..., 255
    images = check.as_images(tokens)
    assert images.shape == (1, 1, 4, 4)
    assert images[0, 0, 1, 2].item() == pytest.approx(6 * 17 / 255)  # row 1, column 2 = id 6
    assert images[0, 0, 3, 3].item() == 1.0


def test_a_sequence_that_is_no_square_image_is_refused():
    with pytest.raises(ValueError, match="not a square image"):
        check.as_images(np.zeros((2, 15), dtype=np.uint8))


def test_the_cnn_learns_a_label_that_follows_from_the_pixels():
    # Label 1: a bright 2x2 square somewhere on faint noise; label 0: noise alone. A CNN with
    # a global max-pool learns this within a few epochs (64 steps: enough for BatchNorm's
    # running statistics, which the evaluation uses, to settle); chance would be ~50%.
    rng = np.random.default_rng(0)
    n, side = 640, 12
    tokens = rng.integers(0, 60, size=(n, side, side), dtype=np.uint8)
    labels = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, side - 1, size=2)
        tokens[i, r : r + 2, c : c + 2] = 250
    images = check.as_images(tokens.reshape(n, -1))
    targets = torch.from_numpy(labels)
    train, val = (images[:512], targets[:512]), (images[512:], targets[512:])
    lines = []
    model, history = check.train_cnn(
        train, val, epochs=4, batch=32, lr=1e-3, seed=0, log=lines.append
    )
    assert len(history) == 4 and len(lines) == 4 and "validation accuracy" in lines[-1]
    assert history[-1] > 0.9
    assert check.accuracy(model, *val) == history[-1]
