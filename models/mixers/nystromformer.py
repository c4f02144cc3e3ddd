"""Nystromformer attention (Xiong, Zeng, Chakraborty, Tan, Fung, Li & Singh, 2021,
"Nystromformer: A Nystrom-Based Algorithm for Approximating Self-Attention").

softmax(Q K^T / sqrt(d)) V is approximated through m landmarks Q~, K~ (segment means of the
queries and keys):

    softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V,

evaluated right to left, so the cost is O(L m). pinv is the iterative Moore-Penrose
approximation of the paper, Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4 from
Z0 = A^T / (||A||_1 ||A||_inf), six iterations. An optional depthwise convolution of the values
along the sequence (per head, kernel 35 in the LRA code) is added as a skip.

Padding: the reference code takes segment means over the padded length, so padding moves the
landmarks. Here the m segments tile each row's real positions only: position i < n of a row
with n real positions belongs to segment floor(i m / n), so the landmarks of a row depend on
its real tokens alone. When n < m some segments are empty: they are left out as keys and
queries (their rows and columns of A are zero, which the iteration keeps zero), so the
approximation is exact up to the pseudo-inverse iteration when n <= m. Z0 is normalised per
matrix (the reference code takes one maximum over the whole batch, which couples the rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.projections import attention_projections, merge_heads, split_heads
from models.ops.causal_conv1d import causal_conv1d


def segment_means_matrix(mask: torch.Tensor, n_landmarks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Averaging weights of the landmarks.

    mask: (B, L) bool.  Returns (weights (B, m, L), each row averaging one segment of the real
    positions, and valid (B, m) bool, False for an empty segment).
    """
    length = mask.shape[1]
    real_length = mask.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
    position = torch.arange(length, device=mask.device)[None, :]
    segment = (position * n_landmarks).div(real_length, rounding_mode="floor")
    segment = segment.clamp_max(n_landmarks - 1)
    membership = torch.nn.functional.one_hot(segment, n_landmarks) * mask[..., None]  # (B, L, m)
    counts = membership.sum(dim=1)  # (B, m)
    weights = membership.transpose(1, 2) / counts.clamp_min(1)[..., None]
    return weights, counts > 0


def iterative_pinv(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of each (m, m) matrix of a (..., m, m) by the paper's
    iteration, started from A^T / (||A||_1 ||A||_inf) per matrix."""
    identity = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    max_column_sum = a.abs().sum(dim=-2).amax(dim=-1)[..., None, None]
    max_row_sum = a.abs().sum(dim=-1).amax(dim=-1)[..., None, None]
    z = a.transpose(-1, -2) / (max_column_sum * max_row_sum).clamp_min(1e-12)
    for _ in range(iterations):  # a fixed handful of (m, m) products, not a loop over positions
        az = a @ z
        z = 0.25 * z @ (13 * identity - az @ (15 * identity - az @ (7 * identity - az)))
    return z


def masked_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with disallowed entries at zero weight; a row with nothing
    allowed comes out all zero instead of NaN (a finite fill keeps NaN out of the backward)."""
    logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
    return logits.softmax(dim=-1) * allowed


class NystromAttention(nn.Module):
    """Multi-head Nystrom attention.

    d_model: D.  n_heads: H.  qkv_dim: total q/k/v width (default D).  n_landmarks: m.
    pinv_iterations: iterations of the pseudo-inverse.  conv_kernel_size: width of the
    depthwise value convolution (odd; 0 = none).  bias: biases in the projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    ops = ("causal_conv1d",)  # the value convolution

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        n_landmarks: int = 64,
        pinv_iterations: int = 6,
        conv_kernel_size: int = 35,
        bias: bool = False,
    ) -> None:
        super().__init__()
        qkv_dim = qkv_dim or d_model
        if conv_kernel_size and conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size {conv_kernel_size} must be odd")
        self.n_heads = n_heads
        self.head_dim = qkv_dim // n_heads
        self.n_landmarks = n_landmarks
        self.pinv_iterations = pinv_iterations
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)
        # One length-k filter per head, applied to every channel of that head's values.
        self.value_conv = (
            nn.Conv2d(
                n_heads,
                n_heads,
                kernel_size=(conv_kernel_size, 1),
                padding=(conv_kernel_size // 2, 0),
                groups=n_heads,
                bias=False,
            )
            if conv_kernel_size
            else None
        )

    def value_skip(self, v: torch.Tensor) -> torch.Tensor:
        """value_conv applied to the values v (B, L, H*E), heads side by side -> (B, L, H*E).

        The same centred convolution as nn.Conv2d's grouped (k, 1) kernel over (B, H, L, E),
        computed by the causal depthwise op (models/ops/causal_conv1d, a compiled channels-last
        kernel on CPU) on v with k // 2 zeros appended, read k // 2 steps later, each head's
        filter repeated over its channels (its gradient summed back by repeat_interleave): no
        transposed copies, and forward + backward at `mini` (64 x 201, 4 heads of 16, k 35, one
        thread) 28-48 -> 14-27 ms, of a ~570 ms layer."""
        heads, width = self.n_heads, self.value_conv.kernel_size[0]
        weight = self.value_conv.weight.view(heads, width)
        weight = weight.repeat_interleave(v.shape[-1] // heads, dim=0)  # (H*E, k)
        half = width // 2
        out = causal_conv1d(F.pad(v, (0, 0, 0, half)), weight, None, None)
        return out[:, half:]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v_flat = self.qkv(x).chunk(3, dim=-1)
        v_flat = v_flat * mask[..., None].to(v_flat.dtype)  # (B, L, H*E), zero at padding
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v_flat))
        # d^-1/4 on each side gives the usual 1/sqrt(d) on every product.
        q = q * self.head_dim**-0.25
        k = k * self.head_dim**-0.25

        weights, valid = segment_means_matrix(mask, self.n_landmarks)
        weights = weights.to(q.dtype)
        q_landmarks = torch.einsum("bml,bhld->bhmd", weights, q)
        k_landmarks = torch.einsum("bml,bhld->bhmd", weights, k)
        valid_keys = valid[:, None, None, :]  # (B, 1, 1, m)
        valid_queries = valid[:, None, :, None]  # (B, 1, m, 1)

        kernel_1 = masked_softmax(q @ k_landmarks.transpose(-1, -2), valid_keys)  # (B, H, L, m)
        kernel_2 = masked_softmax(
            q_landmarks @ k_landmarks.transpose(-1, -2), valid_keys & valid_queries
        )  # (B, H, m, m)
        kernel_3 = masked_softmax(
            q_landmarks @ k.transpose(-1, -2), mask[:, None, None, :] & valid_queries
        )  # (B, H, m, L)
        # The iteration multiplies (m, m) matrices many times; keep it in fp32 under autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            pinv = iterative_pinv(kernel_2.float(), self.pinv_iterations)
            y = kernel_1.float() @ (pinv @ (kernel_3.float() @ v.float()))
        y = merge_heads(y.to(v.dtype))
        if self.value_conv is not None:
            y = y + self.value_skip(v_flat)
        return self.out(y)
