"""Self-pretraining (issue 14) at smoke size: the masks, where the loss comes from, what the
pretraining stage reads, and what fine-tuning starts from."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from lra_bench.engine import TrainerConfig, train_and_evaluate
from lra_bench.masking import PretrainBatches, validation_batches
from lra_bench.objectives import LanguageModelling, lm_targets
from models.backbone import SequenceClassifier
from models.mixers.softmax_attention import SoftmaxAttention
from models.pretraining import PretrainingModel, backbone_weights, load_pretrained_backbone
from tasks.base import Split, TaskData


def split_of(n: int = 96, width: int = 40, seed: int = 0, pair: bool = False) -> Split:
    """Random tokens 1..16 with lengths 5..width, right-padded with 0; labels 0..1."""
    rng = np.random.default_rng(seed)
    shape = (n, 2) if pair else (n,)
    lengths = rng.integers(5, width + 1, shape).astype(np.int32)
    tokens = rng.integers(1, 17, (*shape, width)).astype(np.int16)
    tokens[np.arange(width) >= lengths[..., None]] = 0
    return Split(tokens, lengths, rng.integers(0, 2, n))


def tiny_backbone(
    causal: bool = False, pooling: str = "cls", vocab: int = 17
) -> SequenceClassifier:
    mixer = functools.partial(SoftmaxAttention, n_heads=2, causal=causal)
    return SequenceClassifier(vocab, 2, 40, mixer, d_model=16, n_layers=1, d_ff=32, pooling=pooling)


# --- masks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.1, 0.15, 0.5])
def test_masked_positions_follow_the_ratio_and_never_padding(ratio):
    split = split_of()
    batches = PretrainBatches(split, batch_size=16, seed=3, ratio=ratio)
    hidden = real = 0
    for index in range(40):
        tokens, lengths, masked = batches.batch(index)
        padding = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
        assert not masked[padding].any()
        hidden += int(masked.sum())
        real += int(lengths.sum())
    observed = hidden / real
    sigma = (ratio * (1 - ratio) / real) ** 0.5
    assert abs(observed - ratio) < 4 * sigma, (observed, ratio)


def test_masks_and_batches_are_a_pure_function_of_seed_and_step():
    split = split_of()
    first = PretrainBatches(split, 16, seed=3, ratio=0.15)
    for index in (0, 5, 11):  # out of order, as after a resume
        again = PretrainBatches(split, 16, seed=3, ratio=0.15).batch(index)
        for a, b in zip(first.batch(index), again):
            assert torch.equal(a, b)
    other = PretrainBatches(split, 16, seed=4, ratio=0.15).batch(5)[2]
    assert not torch.equal(first.batch(5)[2], other)
    val_a = [m for _, _, m in validation_batches(split, 32, 0.15)]
    val_b = [m for _, _, m in validation_batches(split, 32, 0.15)]
    assert all(torch.equal(a, b) for a, b in zip(val_a, val_b))


def test_retrieval_documents_are_separate_sequences():
    split = split_of(n=8, pair=True)
    tokens, lengths, masked = PretrainBatches(split, 4, seed=0, ratio=0.15).batch(0)
    rows = PretrainBatches(split, 4, seed=0, ratio=0.15).order.rows(0)
    assert tokens.shape[0] == 8 and lengths.tolist() == split.lengths[rows].reshape(-1).tolist()
    first = split.tokens[rows[0], 1, : lengths[1]]  # the second document of the first pair
    assert tokens[1, : lengths[1]].tolist() == first.tolist()


def test_next_element_targets_are_the_input_shifted_by_one():
    tokens = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    targets, scored = lm_targets(tokens, torch.tensor([4, 2]), None)
    assert targets.tolist() == [[6, 7, 8, 0], [10, 0, 0, 0]]
    assert scored.tolist() == [[True, True, True, False], [True, False, False, False]]


# --- where the loss comes from ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "objective, masking, target",
    [("masked", "token", "token"), ("masked", "pixel", "l1"), ("causal", "token", "token")],
)
def test_no_gradient_flows_from_unscored_or_padded_positions(objective, masking, target):
    causal = objective == "causal"
    model = PretrainingModel(
        tiny_backbone(causal, "mean" if causal else "cls"), 17, objective, masking, target
    )
    lm = LanguageModelling(objective, target, ratio=0.3)
    batch = lm.train_batches(split_of(), 8, seed=1).batch(0)
    tokens, lengths, masked = batch
    kept = {}
    model.lm_head.register_forward_hook(lambda m, i, out: kept.update(out=out) or out.retain_grad())
    lm.loss(model, batch, torch.device("cpu")).backward()
    grad = kept["out"].grad.abs()
    grad = grad.sum(-1) if grad.ndim == 3 else grad  # (B, L)
    _, scored = lm_targets(tokens, lengths, masked)
    padding = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
    assert scored.any() and (grad[scored] > 0).all()
    assert (grad[~scored] == 0).all()
    assert (grad[padding] == 0).all()


def test_a_masked_token_enters_as_the_mask_vector_and_a_masked_pixel_as_zero_plus_it():
    tokens = torch.tensor([[3, 4, 5]])
    masked = torch.tensor([[False, True, False]])
    model = PretrainingModel(tiny_backbone(vocab=256), 256, "masked", "token")
    x = model.embed(tokens, masked)
    torch.testing.assert_close(x[0, 1], model.mask_vector)
    torch.testing.assert_close(x[0, 0], model.backbone.embed.weight[3])
    pixels = PretrainingModel(tiny_backbone(vocab=256), 256, "masked", "pixel", "l1")
    y = pixels.embed(tokens, masked)
    torch.testing.assert_close(y[0, 1], pixels.backbone.embed.weight[0] + pixels.mask_vector)
    torch.testing.assert_close(y[0, 2], pixels.backbone.embed.weight[5])
    assert pixels(tokens, torch.tensor([3]), masked).shape == (1, 3)  # one value per position


# --- what pretraining reads ---------------------------------------------------------------------------


class UntouchableLabels(np.ndarray):
    """Labels whose values raise when indexed (their count may be taken), and are poison
    anyway: -10^6 is no class, so a loss that used one would fail."""

    def __getitem__(self, key):
        raise AssertionError("the pretraining stage read a label")


def pretrain_weights(train: Split, val: Split, tmp_path) -> tuple[dict, list]:
    tmp_path.mkdir()
    torch.manual_seed(0)
    model = PretrainingModel(tiny_backbone(), 17, "masked")
    data = TaskData("toy", {"train": train, "val": val, "test": val}, 17, 2, 40, "toy")
    config = TrainerConfig(batch_size=16, max_steps=6, eval_every=3, eval_batch_size=32)
    objective = LanguageModelling("masked", "token", 0.15)
    result = train_and_evaluate(
        model,
        data,
        config,
        tmp_path,
        torch.device("cpu"),
        seed=0,
        progress=False,
        objective=objective,
    )
    return model.state_dict(), result.history


def poisoned(split: Split) -> Split:
    labels = np.full(len(split), -(10**6), dtype=np.int64).view(UntouchableLabels)
    return Split(split.tokens, split.lengths, labels)


def test_pretraining_never_reads_labels(tmp_path):
    train, val = split_of(seed=0), split_of(n=40, seed=1)
    clean, clean_history = pretrain_weights(train, val, tmp_path / "clean")
    dirty, dirty_history = pretrain_weights(poisoned(train), poisoned(val), tmp_path / "dirty")
    assert dirty_history == clean_history and len(clean_history) == 2
    for name, tensor in clean.items():
        assert torch.equal(dirty[name], tensor), name


# --- what fine-tuning starts from --------------------------------------------------------------------


def test_fine_tuning_loads_everything_but_the_head_and_drops_the_lm_parts(tmp_path):
    torch.manual_seed(1)
    pretrained = PretrainingModel(tiny_backbone(), 17, "masked")
    torch.save({"model": pretrained.state_dict(), "step": 3}, tmp_path / "best.pt")
    torch.manual_seed(2)
    classifier = tiny_backbone()
    fresh_head = {k: v.clone() for k, v in classifier.state_dict().items() if k.startswith("head.")}
    head = load_pretrained_backbone(classifier, tmp_path / "best.pt")
    assert head == sorted(fresh_head)
    loaded = classifier.state_dict()
    expected = backbone_weights(pretrained.state_dict())
    assert set(expected) == set(loaded) - set(fresh_head)  # no mask vector, no LM head
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name
    for name, tensor in fresh_head.items():
        assert torch.equal(loaded[name], tensor), name
    assert all(p.requires_grad for p in classifier.parameters())  # nothing frozen


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    pretrained = PretrainingModel(tiny_backbone(), 17, "masked")
    torch.save({"model": pretrained.state_dict(), "step": 3}, tmp_path / "best.pt")
    wider = SequenceClassifier(
        17, 2, 40, functools.partial(SoftmaxAttention, n_heads=2), d_model=32
    )
    with pytest.raises(ValueError, match="not this model's pretraining"):
        load_pretrained_backbone(wider, tmp_path / "best.pt")
