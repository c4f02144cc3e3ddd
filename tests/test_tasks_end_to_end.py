"""The two-tower model and pair batches, and every new task through the Hydra app at the smoke
profile, on small files in each official format."""

import functools

import numpy as np
import pytest
import torch

from lra_bench.batches import TrainBatches, take
from lra_bench.run import execute
from models.backbone import SequenceClassifier
from models.mixers.softmax_attention import SoftmaxAttention
from tasks.base import Split
from tests.conftest import compose_config
from tests.official_files import write_image, write_pathfinder, write_retrieval, write_text


def pair_model():
    mixer = functools.partial(SoftmaxAttention, n_heads=2)
    return SequenceClassifier(
        vocab_size=257,
        num_classes=2,
        max_length=12,
        mixer=mixer,
        d_model=16,
        n_layers=1,
        d_ff=32,
        pair=True,
    ).eval()


def test_pair_mode_is_one_shared_encoder_and_the_nli_head():
    model = pair_model()
    tokens = torch.randint(1, 257, (3, 2, 12))
    lengths = torch.tensor([[12, 5], [3, 12], [7, 7]])
    with torch.no_grad():
        logits = model(tokens, lengths)
        u = model.encode(tokens[:, 0], lengths[:, 0])
        v = model.encode(tokens[:, 1], lengths[:, 1])
        expected = model.head(torch.cat([u, v, u * v, u - v], dim=-1))
    torch.testing.assert_close(logits, expected)
    assert model.head.net[0].in_features == 4 * 16


def test_pair_batches_are_cut_to_the_longest_document_without_changing_logits():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 257, (4, 2, 12)).astype(np.int16)
    lengths = np.array([[3, 5], [2, 2], [4, 1], [5, 5]], dtype=np.int32)
    tokens[np.arange(12)[None, None, :] >= lengths[..., None]] = 0
    split = Split(tokens, lengths, np.array([0, 1, 1, 0]))
    batch_tokens, batch_lengths, labels = take(split, np.array([0, 1, 2]))
    assert batch_tokens.shape == (3, 2, 5) and batch_lengths.tolist() == [[3, 5], [2, 2], [4, 1]]
    assert labels.tolist() == [0, 1, 1]
    model = pair_model()
    with torch.no_grad():
        full = model(torch.from_numpy(tokens[:3].astype(np.int64)), batch_lengths)
        cut = model(batch_tokens, batch_lengths)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-5)
    assert TrainBatches(split, 2, seed=0).batch(0)[0].shape[:2] == (2, 2)


# task -> (writer of its official files, split sizes at the smoke profile)
TASKS = {
    "text": (write_text, {"train": 64, "val": 32, "test": 32}),
    "retrieval": (write_retrieval, {"train": 64, "val": 32, "test": 32}),
    "image": (write_image, {"train": 64, "val": 8, "test": 16}),
    "pathfinder": (write_pathfinder, {"train": 40, "val": 5, "test": 5}),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_smoke_run_end_to_end_from_official_files(task, tmp_path):
    writer, sizes = TASKS[task]
    writer(tmp_path / "data")
    cfg = compose_config(
        [
            f"task={task}",
            "profile=smoke",
            f"data_root={tmp_path / 'data'}",
            "progress=false",
        ]
    )
    record = execute(cfg, tmp_path)  # the run without the leaderboard refresh
    assert record.status == "ok", record.traceback
    assert record.task == task and record.split_sizes == sizes
    assert record.steps == 4 and 0.0 <= record.test_accuracy <= 1.0
    assert record.validation_is_test == (task == "text")
    assert len(record.data_fingerprint) == 16
