"""Dropout for every model of the zoo: nn.Dropout's contract (each element zeroed with
probability p in training and the rest scaled by 1 / (1 - p); the identity in evaluation), with
the mask drawn by the `dropout` op (models/ops/dropout/) on CPU.

Why not nn.Dropout: on CPU its mask comes from bernoulli_ on the Mersenne twister, one element
at a time (~10 ns each here): 18% of the Transformer's `mini` training step at one thread. The
op's Philox mask is vectorised and split over torch's threads (benchmarks/kernels, op `dropout`).

The op's seed is drawn from torch's default CPU generator at every call, so `torch.manual_seed`
fixes the masks and a checkpoint that restores the generator resumes them; the mask does not
depend on the number of threads. On CUDA torch's own fused dropout runs (its Philox is on the
GPU already), and so it does on a CPU where no kernel can be built (no compiler: the op's
PyTorch form computes Philox in ~40 integer passes, slower than bernoulli_; the line that
cpu_build prints for the other compiled ops says why).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.ops import cpu_build
from models.ops.dropout import dropout as dropout_op
from models.ops.dropout.reference import check_probability

SEED_END = 2**63 - 1  # seeds are drawn from [0, 2^63 - 1)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """F.dropout(x, p, training) with the op's mask on CPU. x: any shape. Returns x's shape."""
    if not training or check_probability(p) == 0.0:
        return x
    if x.device.type != "cpu" or cpu_build.build_problem() is not None:
        return F.dropout(x, p, training=True)
    seed = int(torch.randint(0, SEED_END, (), dtype=torch.int64))
    return dropout_op(x, p, seed)


class Dropout(nn.Module):
    """nn.Dropout(p) with the op's mask on CPU. forward(x: any shape) -> x's shape."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = float(check_probability(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
