import functools

import pytest
import torch

from models.backbone import SequenceClassifier
from models.mixers.softmax_attention import SoftmaxAttention
from models.ops import backend_override, reset_report


def classifier(pooling, positions="sinusoidal", causal=False):
    return SequenceClassifier(
        vocab_size=16,
        num_classes=10,
        max_length=32,
        mixer=functools.partial(SoftmaxAttention, n_heads=2, causal=causal),
        d_model=16,
        n_layers=2,
        d_ff=32,
        positions=positions,
        pooling=pooling,
    ).eval()


@pytest.mark.parametrize("pooling", ["cls", "mean", "last"])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_padding_never_changes_the_logits(pooling, positions):
    model = classifier(pooling, positions)
    tokens = torch.randint(1, 16, (3, 20))
    lengths = torch.tensor([20, 11, 5])
    with torch.no_grad():
        batched = model(tokens, lengths)
        # Different junk in the padding, and each row alone at its own length.
        junk = tokens.clone()
        junk[1, 11:] = 7
        junk[2, 5:] = 3
        with_junk = model(junk, lengths)
        alone = torch.cat(
            [model(tokens[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(3)]
        )
    torch.testing.assert_close(batched, with_junk)
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_logits_shape_and_kernel_backends():
    model = classifier("cls")
    reset_report()
    assert model.kernel_backends() == {}  # nothing ran yet: nothing is claimed
    assert model(torch.randint(1, 16, (2, 9)), torch.tensor([9, 4])).shape == (2, 10)
    assert model.kernel_backends() == {"SoftmaxAttention": "attention: chunked"}
    with backend_override("reference"):
        model(torch.randint(1, 16, (2, 9)), torch.tensor([9, 4]))
    assert model.kernel_backends() == {"SoftmaxAttention": "attention: chunked + reference"}


def test_causal_last_pooling_reads_the_last_real_token():
    model = classifier("last", causal=True)
    tokens = torch.randint(1, 16, (1, 12))
    with torch.no_grad():
        full = model(tokens, torch.tensor([12]))
        changed = tokens.clone()
        changed[0, 0] = (changed[0, 0] % 15) + 1
        assert not torch.allclose(model(changed, torch.tensor([12])), full)


def test_bad_choices_name_the_config_key():
    with pytest.raises(ValueError, match="model.backbone.pooling='max'"):
        classifier("max")
    with pytest.raises(ValueError, match="model.backbone.positions='rope'"):
        classifier("cls", positions="rope")
