"""The sparse mixers never build an L x L tensor and the largest tensor they create grows about
linearly in L, measured by recording every tensor an aten op returns (its storage, so that
broadcast views do not count)."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from models.mixers.bigbird import BigBirdAttention
from models.mixers.local_attention import LocalAttention
from models.mixers.longformer import LongformerAttention
from models.mixers.reformer import LSHAttention
from models.mixers.sinkhorn import SinkhornAttention
from models.mixers.sliding_window_attention import SlidingWindowAttention
from models.mixers.sparse_transformer import SparseTransformerAttention

D, H = 4, 1  # batch 1, one narrow head: the pattern sets the sizes, not the width
SHORT, LONG = 4096, 8192

# LRA-scale settings of each pattern, built for a given max length.
MIXERS = {
    "local": lambda n: LocalAttention(D, H, block_size=50),
    "sliding_window": lambda n: SlidingWindowAttention(D, H, window=128),
    "sparse_fixed": lambda n: SparseTransformerAttention(D, H, pattern="fixed"),
    "sparse_strided": lambda n: SparseTransformerAttention(D, H, pattern="strided"),
    "longformer": lambda n: LongformerAttention(D, H, window=128, n_global=1),
    "bigbird": lambda n: BigBirdAttention(D, H, max_length=n),
    "reformer": lambda n: LSHAttention(D, H, n_buckets=64, n_hashes=2, chunk_size=64),
    "sinkhorn": lambda n: SinkhornAttention(D, H, block_size=64, max_length=n),
}


class LargestTensor(TorchDispatchMode):
    """Records the most elements held by the storage of any tensor an op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0
        self.op = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in tree_flatten(result)[0]:
            if isinstance(value, torch.Tensor):
                elements = value.untyped_storage().nbytes() // value.element_size()
                if elements > self.elements:
                    self.elements, self.op = elements, f"{func} -> {tuple(value.shape)}"
        return result


def largest_tensor(name: str, length: int, backward: bool) -> tuple[int, str]:
    torch.manual_seed(0)
    mixer = MIXERS[name](length)
    x = torch.randn(1, length, D, requires_grad=backward)
    mask = torch.ones(1, length, dtype=torch.bool)
    with LargestTensor() as record:
        if backward:
            mixer(x, mask).square().sum().backward()
        else:
            with torch.no_grad():
                mixer(x, mask)
    return record.elements, record.op


def check_linear(name: str, backward: bool) -> None:
    short, _ = largest_tensor(name, SHORT, backward)
    long, op = largest_tensor(name, LONG, backward)
    assert long < LONG * LONG, f"{name}: {op} has {long} >= L^2 elements"
    assert long / short <= 2.2, f"{name}: largest tensor grew {long / short:.2f}x for 2x L ({op})"


def test_the_recorder_sees_a_quadratic_score_matrix():
    with LargestTensor() as record:
        q = torch.randn(1, 1, 300, 4)
        torch.softmax(q @ q.transpose(-1, -2), -1)
    assert record.elements == 300 * 300


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_forward_memory_is_linear_in_length(name):
    check_linear(name, backward=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_training_step_memory_is_linear_in_length(name):
    check_linear(name, backward=True)
