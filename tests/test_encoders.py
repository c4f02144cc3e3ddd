"""The backbone's input encoders (models/encoders.py): LRA's token table and the S4 repository's
linear encoder of normalised pixel intensities."""

import functools

import pytest
import torch
from torch import nn

from lra_bench.budget import TaskShape
from lra_bench.compose import compose
from lra_bench.stages import build_model
from models.backbone import SequenceClassifier
from models.encoders import IntensityEncoder, TokenEmbedding
from models.mixers.softmax_attention import SoftmaxAttention
from models.pretraining import PretrainingModel


def classifier(encoder: str, vocab: int = 256, **kwargs) -> SequenceClassifier:
    mixer = functools.partial(SoftmaxAttention, n_heads=2)
    return SequenceClassifier(
        vocab,
        2,
        40,
        mixer,
        d_model=16,
        n_layers=1,
        d_ff=32,
        pooling="mean",
        encoder=encoder,
        **kwargs,
    )


def test_the_intensity_encoder_maps_gray_levels_onto_minus_one_to_one_as_s4_normalises():
    encoder = IntensityEncoder(256, 3)
    with torch.no_grad():
        encoder.proj.weight.copy_(torch.tensor([[1.0], [2.0], [-0.5]]))
        encoder.proj.bias.copy_(torch.tensor([0.0, 1.0, 0.25]))
    out = encoder(torch.tensor([[0, 255, 51]]))
    # torchvision: ToTensor gives v / 255, Normalize(0.5, 0.5) gives (v / 255 - 0.5) / 0.5.
    value = torch.tensor([0.0, 255.0, 51.0]) / 255.0
    normalised = (value - 0.5) / 0.5
    expected = normalised[:, None] * torch.tensor([1.0, 2.0, -0.5]) + torch.tensor([0.0, 1.0, 0.25])
    torch.testing.assert_close(out[0], expected)
    assert out.shape == (1, 3, 3)
    torch.testing.assert_close(out[0, 0], torch.tensor([-1.0, -1.0, 0.75]))


@pytest.mark.parametrize(
    "mean, std",
    [(0.0, 1.0), (122.6 / 255, 61.0 / 255)],  # S4's Pathfinder (center: false) and its CIFAR
)
def test_the_backbone_normalises_gray_levels_as_the_source_says(mean, std):
    model = classifier("linear", pixel_norm=[mean, std])
    tokens = torch.tensor([[0, 255, 100]])
    normalised = (torch.tensor([0.0, 255.0, 100.0]) / 255.0 - mean) / std
    expected = normalised[:, None] * model.embed.proj.weight[:, 0] + model.embed.proj.bias
    torch.testing.assert_close(model.embed(tokens)[0], expected)


def test_a_pixel_norm_without_the_linear_encoder_or_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"pixel_norm=\[0.5, 0.5\] .* encoder is 'embedding'"):
        classifier("embedding", pixel_norm=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"pixel_norm=\[0.5\]: give \[mean, std\]"):
        classifier("linear", pixel_norm=[0.5])
    with pytest.raises(ValueError, match="std must be positive"):
        classifier("linear", pixel_norm=[0.5, 0.0])


def test_the_token_table_draws_what_nn_embedding_with_lras_normal_init_drew():
    # The table replaced `nn.Embedding` + `normal_(std=1)` in the backbone: same draws, same
    # state-dict key, so earlier checkpoints load and seeds give the same model.
    torch.manual_seed(5)
    old = nn.Embedding(256, 8)
    nn.init.normal_(old.weight, std=1.0)
    torch.manual_seed(5)
    new = TokenEmbedding(256, 8)
    torch.testing.assert_close(new.weight, old.weight, rtol=0, atol=0)
    assert list(new.state_dict()) == ["weight"]


def test_a_backbone_with_the_intensity_encoder_classifies_pixels_and_learns_its_projection():
    model = classifier("linear")
    tokens = torch.randint(0, 256, (3, 40))
    logits = model(tokens, torch.full((3,), 40))
    assert logits.shape == (3, 2)
    logits.sum().backward()
    assert model.embed.proj.weight.grad.abs().sum() > 0
    # Two parameters of the encoder (weight, bias) in place of the 256 x 16 table.
    table = sum(p.numel() for p in classifier("embedding").parameters())
    linear = sum(p.numel() for p in model.parameters())
    assert table - linear == 256 * 16 - (16 + 16)


def test_an_unknown_encoder_is_refused_by_its_key():
    with pytest.raises(ValueError, match=r"model.backbone.encoder='conv'"):
        classifier("conv")


def test_the_intensity_encoder_is_refused_on_a_task_whose_tokens_are_not_pixels():
    cfg = compose(["task=listops", "model=s4d", "profile=smoke", "+model.backbone.encoder=linear"])
    with pytest.raises(ValueError, match=r"encoder=linear .* task 'listops' has no pixels"):
        build_model(cfg, TaskShape(20, 10, 64, False, intensities=False))
    pixels = compose(["task=image", "model=s4d", "profile=smoke", "+model.backbone.encoder=linear"])
    model = build_model(pixels, TaskShape(256, 10, 64, False, intensities=True))
    assert isinstance(model.embed, IntensityEncoder)


def test_a_masked_pixel_under_the_intensity_encoder_enters_as_black_plus_the_mask_vector():
    model = PretrainingModel(classifier("linear"), 256, "masked", "pixel", "l1")
    tokens = torch.tensor([[3, 200, 5]])
    masked = torch.tensor([[False, True, False]])
    x = model.embed(tokens, masked)
    encode = model.backbone.embed
    torch.testing.assert_close(x[0, 1], encode(torch.tensor([[0]]))[0, 0] + model.mask_vector)
    torch.testing.assert_close(x[0, 0], encode(torch.tensor([[3]]))[0, 0])
    assert model.mask_vector.shape == (16,)
